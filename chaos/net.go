package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The names the suite gives what it creates in the root namespace. Cleanup
// removes exactly these (and nothing else), so a crashed run's leftovers go
// at the next start.
const (
	nsPrefix    = "stw-chaos-n" // + node index: one network namespace per node
	bridgeName  = "stwchaos0"
	vethPrefix  = "stwc-n" // + node index: the root side of a node's veth pair
	nodeIfName  = "eth0"   // the node side, inside its namespace
	mountMarker = "stw-chaos-"
)

// candidateSubnets are the /24s the suite may use, the first one that no
// address or route of this machine overlaps.
var candidateSubnets = []string{"10.213.77.0/24", "10.213.78.0/24", "172.30.213.0/24", "192.168.213.0/24"}

// network is the suite's topology: a bridge in the root namespace holding
// the .1 address, and one namespace per node at .10, .11, ...
type network struct {
	subnet   netip.Prefix
	bridgeIP netip.Addr
	nodes    []netip.Addr
	// netem reports whether this kernel has the netem qdisc; without it,
	// loss is an iptables random drop and delay a tbf rate limit.
	netem bool
}

// forwardRule lets the nodes reach each other across the bridge whatever
// the root namespace's FORWARD chain says: once br_netfilter is loaded,
// frames between two ports of a bridge pass that chain, and dockerd both
// loads it and sets the chain's policy to DROP (the NATS servers then
// never form their cluster).
var forwardRule = []string{"FORWARD", "-i", bridgeName, "-o", bridgeName, "-j", "ACCEPT"}

func nsName(i int) string   { return nsPrefix + strconv.Itoa(i) }
func vethName(i int) string { return vethPrefix + strconv.Itoa(i) }

// sh runs a command to completion (bounded by ctx and 30 s) and returns
// its combined output in the error when it fails.
func sh(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// inNS runs a command inside node i's namespace.
func inNS(ctx context.Context, i int, name string, args ...string) (string, error) {
	return sh(ctx, "ip", append([]string{"netns", "exec", nsName(i), name}, args...)...)
}

// cleanupLeftovers removes whatever a previous run of the suite left: the
// processes inside its namespaces, the namespaces, the veths, the bridge and
// the tmpfs mounts it made. It touches only names with the suite's prefixes.
func cleanupLeftovers(ctx context.Context, logf func(string, ...any)) {
	out, _ := sh(ctx, "ip", "netns", "list")
	for line := range strings.Lines(out) {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if !strings.HasPrefix(name, nsPrefix) {
			continue
		}
		pids, _ := sh(ctx, "ip", "netns", "pids", name)
		for _, f := range strings.Fields(pids) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				logf("cleanup: killed leftover process %d in %s", pid, name)
			}
		}
		if _, err := sh(ctx, "ip", "netns", "del", name); err == nil {
			logf("cleanup: deleted namespace %s", name)
		}
	}
	links, _ := sh(ctx, "ip", "-o", "link", "show")
	for line := range strings.Lines(links) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if strings.HasPrefix(name, vethPrefix) || name == bridgeName {
			if _, err := sh(ctx, "ip", "link", "del", name); err == nil {
				logf("cleanup: deleted link %s", name)
			}
		}
	}
	for {
		if _, err := sh(ctx, "iptables", append([]string{"-w", "-D"}, forwardRule...)...); err != nil {
			break
		}
		logf("cleanup: deleted the FORWARD rule for %s", bridgeName)
	}
	for _, m := range suiteMounts() {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err == nil {
			logf("cleanup: unmounted %s", m)
		}
	}
}

// suiteMounts lists the tmpfs mounts the suite made (under a run
// directory, whose name carries mountMarker).
func suiteMounts() []string {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 3 && fs[2] == "tmpfs" && strings.Contains(fs[1], mountMarker) {
			out = append(out, fs[1])
		}
	}
	return out
}

// pickSubnet returns the first candidate /24 no address or route of this
// machine overlaps.
func pickSubnet(ctx context.Context) (netip.Prefix, error) {
	var used []netip.Prefix
	for _, args := range [][]string{{"-4", "-o", "addr", "show"}, {"-4", "route", "show", "table", "all"}} {
		out, err := sh(ctx, "ip", args...)
		if err != nil {
			return netip.Prefix{}, err
		}
		for _, f := range strings.Fields(out) {
			if p, err := netip.ParsePrefix(f); err == nil {
				used = append(used, p.Masked())
			} else if a, err := netip.ParseAddr(f); err == nil && a.Is4() {
				used = append(used, netip.PrefixFrom(a, 32))
			}
		}
	}
	for _, c := range candidateSubnets {
		p := netip.MustParsePrefix(c)
		free := true
		for _, u := range used {
			if u.Bits() > 0 && u.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, errors.New("no free /24 among " + strings.Join(candidateSubnets, ", "))
}

// setupNetwork creates the bridge and, per node, a namespace joined to the
// bridge by a veth pair.
func setupNetwork(ctx context.Context, nodes int) (*network, error) {
	subnet, err := pickSubnet(ctx)
	if err != nil {
		return nil, err
	}
	base := subnet.Addr().As4()
	addr := func(last byte) netip.Addr { b := base; b[3] = last; return netip.AddrFrom4(b) }
	n := &network{subnet: subnet, bridgeIP: addr(1)}
	steps := [][]string{
		{"link", "add", bridgeName, "type", "bridge"},
		{"addr", "add", n.bridgeIP.String() + "/24", "dev", bridgeName},
		{"link", "set", bridgeName, "up"},
	}
	for i := range nodes {
		ip := addr(byte(10 + i))
		n.nodes = append(n.nodes, ip)
		ns, veth := nsName(i), vethName(i)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"link", "add", veth, "type", "veth", "peer", "name", nodeIfName, "netns", ns},
			[]string{"link", "set", veth, "master", bridgeName},
			[]string{"link", "set", veth, "up"},
			[]string{"-n", ns, "addr", "add", ip.String() + "/24", "dev", nodeIfName},
			[]string{"-n", ns, "link", "set", nodeIfName, "up"},
			[]string{"-n", ns, "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if _, err := sh(ctx, "ip", s...); err != nil {
			return n, err
		}
	}
	if _, err := sh(ctx, "iptables", append([]string{"-w", "-I"}, forwardRule...)...); err != nil {
		return n, err
	}
	if _, err := sh(ctx, "tc", "qdisc", "add", "dev", vethName(0), "root", "netem", "delay", "1ms"); err == nil {
		n.netem = true
		_, _ = sh(ctx, "tc", "qdisc", "del", "dev", vethName(0), "root")
	}
	return n, nil
}

// teardown deletes the namespaces (their ends of the veths go with them),
// the veths and the bridge.
func (n *network) teardown(ctx context.Context) {
	for i := range n.nodes {
		_, _ = sh(ctx, "ip", "netns", "del", nsName(i))
		_, _ = sh(ctx, "ip", "link", "del", vethName(i))
	}
	_, _ = sh(ctx, "ip", "link", "del", bridgeName)
	_, _ = sh(ctx, "iptables", append([]string{"-w", "-D"}, forwardRule...)...)
}

// cut drops all traffic between node i and each of peers, inside node i's
// namespace (both directions). Traffic from the root namespace (clients,
// PostgreSQL) still flows.
func (n *network) cut(ctx context.Context, i int, peers ...int) error {
	for _, p := range peers {
		ip := n.nodes[p].String()
		if _, err := inNS(ctx, i, "iptables", "-w", "-A", "INPUT", "-s", ip, "-j", "DROP"); err != nil {
			return err
		}
		if _, err := inNS(ctx, i, "iptables", "-w", "-A", "OUTPUT", "-d", ip, "-j", "DROP"); err != nil {
			return err
		}
	}
	return nil
}

// heal removes every partition rule and every netem qdisc.
func (n *network) heal(ctx context.Context) error {
	var errs []error
	for i := range n.nodes {
		if _, err := inNS(ctx, i, "iptables", "-w", "-F"); err != nil {
			errs = append(errs, err)
		}
		// Deleting a qdisc that is not there fails; that is the common case.
		_, _ = inNS(ctx, i, "tc", "qdisc", "del", "dev", nodeIfName, "root")
		_, _ = sh(ctx, "tc", "qdisc", "del", "dev", vethName(i), "root")
	}
	return errors.Join(errs...)
}

// qdisc puts a root qdisc on both ends of node i's link.
func (n *network) qdisc(ctx context.Context, i int, spec ...string) error {
	if _, err := inNS(ctx, i, "tc", append([]string{"qdisc", "replace", "dev", nodeIfName, "root"}, spec...)...); err != nil {
		return err
	}
	_, err := sh(ctx, "tc", append([]string{"qdisc", "replace", "dev", vethName(i), "root"}, spec...)...)
	return err
}

// loss drops a share of node i's packets both ways (pct, e.g. 20): netem
// where the kernel has it, else an iptables random drop inside the node
// (its loopback spared). It returns what it did.
func (n *network) loss(ctx context.Context, i, pct int) (string, error) {
	if n.netem {
		return fmt.Sprintf("netem loss %d%% both ways", pct), n.qdisc(ctx, i, "netem", "loss", fmt.Sprintf("%d%%", pct))
	}
	p := fmt.Sprintf("%.2f", float64(pct)/100)
	for _, rule := range [][]string{{"INPUT", "!", "-i", "lo"}, {"OUTPUT", "!", "-o", "lo"}} {
		args := append([]string{"-w", "-A"}, rule...)
		args = append(args, "-m", "statistic", "--mode", "random", "--probability", p, "-j", "DROP")
		if _, err := inNS(ctx, i, "iptables", args...); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("iptables random drop of %d%% both ways (no netem in this kernel)", pct), nil
}

// slow delays node i's packets both ways: netem delay where the kernel
// has it, else a tbf rate limit (a narrow link whose queue delays).
func (n *network) slow(ctx context.Context, i int) (string, error) {
	if n.netem {
		return "netem delay 100ms ±50ms both ways", n.qdisc(ctx, i, "netem", "delay", "100ms", "50ms")
	}
	return "tbf 2mbit, 300ms queue, both ways (no netem in this kernel)", n.qdisc(ctx, i, "tbf", "rate", "2mbit", "burst", "32kb", "latency", "300ms")
}
