//go:build !linux

package supervise

import "syscall"

// sysProcAttr puts the child in its own process group; only Linux can
// kill it with the owner.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
