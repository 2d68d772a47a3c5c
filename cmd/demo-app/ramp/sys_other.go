//go:build unix && !linux

package main

import "syscall"

// childAttr puts steward dev in its own process group, so that Ctrl-C
// reaches only this program, which then stops steward dev in order.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// leftovers needs /proc: elsewhere the check is not made (and the demo
// says so).
func leftovers(path, env string) ([]int, error) { return nil, nil }

const canCheckLeftovers = false

func kill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
