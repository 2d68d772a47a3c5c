package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestTypeScriptClient runs the TypeScript client's tests
// (clients/typescript, npm test: the generated types checked against
// gateway/api/openapi.json, tsc, node --test) against a fresh `steward
// dev`'s gateway. Without node and npm it is skipped, except in CI
// (CI=true), where it fails.
func TestTypeScriptClient(t *testing.T) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("the TypeScript client's tests need %s: %v", tool, err)
			}
			t.Skipf("%s is not installed (CI=true makes this a failure)", tool)
		}
	}
	dir, err := filepath.Abs("../../clients/typescript")
	if err != nil {
		t.Fatal(err)
	}
	npmCI(t, dir)

	// Killed when the test ends (startDev): the tests start no process
	// that outlives it.
	d := startDev(t)
	// The client talks to the gateway only: wait until it follows
	// Steward's own services, as TestReadme does.
	waitFollowing(t, d)

	start := time.Now()
	if err := runLogged(t, dir, []string{"STEWARD_ENDPOINT=" + d.gateway, "STEWARD_TOKEN="}, "npm", "test"); err != nil {
		t.Fatalf("npm test in clients/typescript: %v (output above)", err)
	}
	t.Logf("npm test passed in %s", time.Since(start).Round(time.Millisecond))
}

// npmCI installs the client's locked dependencies into dir/node_modules
// unless the lockfile is the one installed last (as api/lint/lint.sh does).
func npmCI(t *testing.T, dir string) {
	t.Helper()
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "node_modules", ".package-lock.json.installed")
	if installed, err := os.ReadFile(marker); err == nil && bytes.Equal(installed, lock) {
		return
	}
	if err := runLogged(t, dir, nil, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"); err != nil {
		t.Fatalf("npm ci in clients/typescript: %v", err)
	}
	if err := os.WriteFile(marker, lock, 0o644); err != nil {
		t.Fatal(err)
	}
}

// runLogged runs name with args in dir, env added to the test's own, and
// passes its output to t.Log line by line as it comes.
func runLogged(t *testing.T, dir string, env []string, name string, args ...string) error {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			t.Log(sc.Text())
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	err := cmd.Run()
	w.Close()
	wg.Wait()
	return err
}
