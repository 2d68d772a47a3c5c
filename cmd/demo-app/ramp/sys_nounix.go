//go:build !unix

package main

import (
	"errors"
	"syscall"
)

// Without unix process groups and signals the demo cannot stop steward
// dev in order; it builds, so that the module does, and says so.
func childAttr() *syscall.SysProcAttr { return nil }

func leftovers(path, env string) ([]int, error) { return nil, nil }

const canCheckLeftovers = false

func kill(int) error { return errors.ErrUnsupported }
