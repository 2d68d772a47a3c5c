package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// childAttr puts steward dev in its own process group, so that Ctrl-C
// reaches only this program, which then stops steward dev in order (and
// it stops the demo app's processes through the driver). Pdeathsig sends
// it SIGINT should this program die without doing so. (Pdeathsig fires
// when the thread that started the child exits; Go ends threads only
// after a goroutine that locked one returns, which nothing here does.)
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGINT}
}

// leftovers finds running processes of the program at path (argv[0] as
// the driver starts it) whose environment holds env, if env is not empty:
// the registry URL the demo gave its replicas tells them from any other
// demo-app on the machine.
func leftovers(path, env string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil { // gone, or not ours to read
			continue
		}
		argv0, _, _ := bytes.Cut(cmdline, []byte{0})
		if string(argv0) != path {
			continue
		}
		if env != "" {
			environ, err := os.ReadFile(filepath.Join(dir, "environ"))
			if err != nil || !bytes.Contains(append([]byte{0}, environ...), []byte("\x00"+env+"\x00")) {
				continue
			}
		}
		if zombie(dir) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// zombie reports whether the process has exited and waits to be reaped:
// it holds no resources and serves nothing.
func zombie(dir string) bool {
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return true
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X'
}

const canCheckLeftovers = true

func kill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
