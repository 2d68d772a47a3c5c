// Package helm tests the Steward Helm chart (steward/) without a
// Kubernetes cluster: helm's own lint, and a client-only install (what
// `helm template` does) whose every manifest is decoded strictly into the
// k8s.io/api types and checked for what keeps Steward correct and safe:
// voter lists, probes, disruption budgets, security contexts, RBAC and
// hooks.
package helm

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	release "helm.sh/helm/v4/pkg/release/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir    = "steward"
	releaseName = "steward"
	namespace   = "steward-system"
	kubeVersion = "v1.33.0"
	fullname    = "steward" // the release name holds the chart's name
)

// renderDir, when set, receives each value set's rendered manifests and
// hooks, for reading: go test -run TestRender -args -render /tmp/steward-chart
var renderDir = flag.String("render", "", "write the rendered manifests into this directory")

// voterServices are the services run as StatefulSets of voters.
var voterServices = []string{"config", "registry", "election", "scaler"}

// valueSets are the values files every test renders the chart with:
// the defaults alone, and the HA file over them.
var valueSets = map[string]string{
	"default": "",
	"ha":      filepath.Join(chartDir, "ci", "ha-values.yaml"),
}

func readValues(t *testing.T, path string) map[string]any {
	t.Helper()
	vals := map[string]any{}
	if path == "" {
		return vals
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &vals); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return vals
}

func kube(t *testing.T) *common.KubeVersion {
	t.Helper()
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func TestLint(t *testing.T) {
	for name, path := range valueSets {
		t.Run(name, func(t *testing.T) {
			lint := action.NewLint()
			lint.Namespace = namespace
			lint.Strict = true
			lint.KubeVersion = kube(t)
			res := lint.Run([]string{chartDir}, readValues(t, path))
			for _, m := range res.Messages {
				t.Log(m.Error())
				if m.Severity >= support.WarningSev {
					t.Errorf("lint: %s", m.Error())
				}
			}
			for _, err := range res.Errors {
				t.Errorf("lint error: %v", err)
			}
			if res.TotalChartsLinted != 1 {
				t.Errorf("TotalChartsLinted = %d, want 1", res.TotalChartsLinted)
			}
		})
	}
}

// render installs the chart client-only (as `helm template`) and returns
// the release: its manifest and its hooks.
func render(t *testing.T, vals map[string]any) (*release.Release, error) {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	install := action.NewInstall(action.NewConfiguration())
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = releaseName
	install.Namespace = namespace
	install.KubeVersion = kube(t)
	install.APIVersions = common.VersionSet{"monitoring.coreos.com/v1"}
	r, err := install.Run(ch, vals)
	if err != nil {
		return nil, err
	}
	rel, ok := r.(*release.Release)
	if !ok {
		t.Fatalf("Install.Run returned a %T", r)
	}
	return rel, nil
}

// manifests holds every rendered object, decoded into its API type.
type manifests struct {
	statefulSets    map[string]*appsv1.StatefulSet
	deployments     map[string]*appsv1.Deployment
	jobs            map[string]*batchv1.Job
	services        map[string]*corev1.Service
	secrets         map[string]*corev1.Secret
	configMaps      map[string]*corev1.ConfigMap
	serviceAccounts map[string]*corev1.ServiceAccount
	pdbs            map[string]*policyv1.PodDisruptionBudget
	roles           []*rbacv1.Role
	roleBindings    []*rbacv1.RoleBinding
	networkPolicies map[string]*networkingv1.NetworkPolicy
	serviceMonitors []map[string]any
	kinds           map[string]int
}

// decode decodes doc into a T, failing on any field T does not have.
func decode[T any](t *testing.T, doc string) *T {
	t.Helper()
	var v T
	if err := yaml.UnmarshalStrict([]byte(doc), &v); err != nil {
		t.Fatalf("strict decode into %T: %v\n%s", v, err, doc)
	}
	return &v
}

func decodeAll(t *testing.T, rel *release.Release) *manifests {
	t.Helper()
	m := &manifests{
		statefulSets: map[string]*appsv1.StatefulSet{}, deployments: map[string]*appsv1.Deployment{},
		jobs: map[string]*batchv1.Job{}, services: map[string]*corev1.Service{}, secrets: map[string]*corev1.Secret{},
		configMaps: map[string]*corev1.ConfigMap{}, serviceAccounts: map[string]*corev1.ServiceAccount{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, networkPolicies: map[string]*networkingv1.NetworkPolicy{},
		kinds: map[string]int{},
	}
	docs := strings.Split(rel.Manifest, "\n---")
	for _, h := range rel.Hooks {
		docs = append(docs, h.Manifest)
	}
	for _, doc := range docs {
		if strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(doc), "---")) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("manifest: %v\n%s", err, doc)
		}
		m.kinds[tm.APIVersion+"/"+tm.Kind]++
		switch tm.APIVersion + "/" + tm.Kind {
		case "apps/v1/StatefulSet":
			o := decode[appsv1.StatefulSet](t, doc)
			m.statefulSets[o.Name] = o
		case "apps/v1/Deployment":
			o := decode[appsv1.Deployment](t, doc)
			m.deployments[o.Name] = o
		case "batch/v1/Job":
			o := decode[batchv1.Job](t, doc)
			m.jobs[o.Name] = o
		case "v1/Service":
			o := decode[corev1.Service](t, doc)
			m.services[o.Name] = o
		case "v1/Secret":
			o := decode[corev1.Secret](t, doc)
			m.secrets[o.Name] = o
		case "v1/ConfigMap":
			o := decode[corev1.ConfigMap](t, doc)
			m.configMaps[o.Name] = o
		case "v1/ServiceAccount":
			o := decode[corev1.ServiceAccount](t, doc)
			m.serviceAccounts[o.Name] = o
		case "policy/v1/PodDisruptionBudget":
			o := decode[policyv1.PodDisruptionBudget](t, doc)
			m.pdbs[o.Name] = o
		case "rbac.authorization.k8s.io/v1/Role":
			m.roles = append(m.roles, decode[rbacv1.Role](t, doc))
		case "rbac.authorization.k8s.io/v1/RoleBinding":
			m.roleBindings = append(m.roleBindings, decode[rbacv1.RoleBinding](t, doc))
		case "networking.k8s.io/v1/NetworkPolicy":
			o := decode[networkingv1.NetworkPolicy](t, doc)
			m.networkPolicies[o.Name] = o
		case "monitoring.coreos.com/v1/ServiceMonitor":
			// No Go type here for the Prometheus Operator's CRD: unstructured.
			m.serviceMonitors = append(m.serviceMonitors, *decode[map[string]any](t, doc))
		default:
			t.Errorf("unexpected kind %s/%s", tm.APIVersion, tm.Kind)
		}
	}
	return m
}

// pod is a workload's pod template, by the workload's name.
type pod struct {
	owner string
	spec  corev1.PodSpec
	meta  metav1.ObjectMeta
}

func (m *manifests) pods() []pod {
	var ps []pod
	for _, n := range slices.Sorted(maps.Keys(m.statefulSets)) {
		s := m.statefulSets[n]
		ps = append(ps, pod{"StatefulSet " + n, s.Spec.Template.Spec, s.Spec.Template.ObjectMeta})
	}
	for _, n := range slices.Sorted(maps.Keys(m.deployments)) {
		d := m.deployments[n]
		ps = append(ps, pod{"Deployment " + n, d.Spec.Template.Spec, d.Spec.Template.ObjectMeta})
	}
	for _, n := range slices.Sorted(maps.Keys(m.jobs)) {
		j := m.jobs[n]
		ps = append(ps, pod{"Job " + n, j.Spec.Template.Spec, j.Spec.Template.ObjectMeta})
	}
	return ps
}

func env(c corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

func isSteward(c corev1.Container, image string) bool { return c.Image == image }

// replicasOf is the replica count values give a component.
func replicasOf(vals map[string]any, component string) int {
	if c, ok := vals[component].(map[string]any); ok {
		if r, ok := c["replicas"]; ok {
			return int(r.(float64))
		}
	}
	if component == "gateway" {
		return 2 // values.yaml
	}
	return 3
}

func wantVoters(component string, n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%s-%d", fullname, component, i)
	}
	return strings.Join(ids, ",")
}

func TestRender(t *testing.T) {
	for name, path := range valueSets {
		t.Run(name, func(t *testing.T) {
			vals := readValues(t, path)
			rel, err := render(t, vals)
			if err != nil {
				t.Fatal(err)
			}
			if *renderDir != "" {
				out := rel.Manifest
				for _, h := range rel.Hooks {
					out += "\n---\n# hook " + h.Path + "\n" + h.Manifest
				}
				if err := os.WriteFile(filepath.Join(*renderDir, name+".yaml"), []byte(out+"\n---\n# NOTES.txt\n"+rel.Info.Notes), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m := decodeAll(t, rel)
			t.Logf("rendered: %v", m.kinds)
			image := "steward:0.1.0"
			if name == "ha" {
				image = "registry.example.com/steward:0.1.0"
			}
			t.Run("voters", func(t *testing.T) { checkVoters(t, m, vals, image) })
			t.Run("probes", func(t *testing.T) { checkProbes(t, m, image) })
			t.Run("pdbs", func(t *testing.T) { checkPDBs(t, m) })
			t.Run("securityContext", func(t *testing.T) { checkSecurity(t, m, image) })
			t.Run("rbac", func(t *testing.T) { checkRBAC(t, m, vals) })
			t.Run("hooks", func(t *testing.T) { checkHooks(t, rel, m, name == "ha") })
			t.Run("references", func(t *testing.T) { checkReferences(t, m, vals) })
			t.Run("auth secret", func(t *testing.T) { checkAuthSecret(t, m) })
			t.Run("extras", func(t *testing.T) { checkExtras(t, m, name == "ha") })
		})
	}
}

func checkVoters(t *testing.T, m *manifests, vals map[string]any, image string) {
	for _, svc := range voterServices {
		name := fullname + "-" + svc
		ss, ok := m.statefulSets[name]
		if !ok {
			t.Errorf("no StatefulSet %s", name)
			continue
		}
		n := replicasOf(vals, svc)
		if ss.Spec.Replicas == nil || int(*ss.Spec.Replicas) != n {
			t.Errorf("%s replicas = %v, want %d", name, ss.Spec.Replicas, n)
		}
		if ss.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
			t.Errorf("%s podManagementPolicy = %q, want Parallel", name, ss.Spec.PodManagementPolicy)
		}
		if u := ss.Spec.UpdateStrategy; u.Type != appsv1.RollingUpdateStatefulSetStrategyType || u.RollingUpdate == nil ||
			u.RollingUpdate.MaxUnavailable == nil || u.RollingUpdate.MaxUnavailable.IntValue() != 1 {
			t.Errorf("%s updateStrategy = %+v, want RollingUpdate with maxUnavailable 1", name, u)
		}
		if h, ok := m.services[ss.Spec.ServiceName]; !ok || h.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("%s serviceName %q: not a headless Service of the chart", name, ss.Spec.ServiceName)
		}
		c := ss.Spec.Template.Spec.Containers[0]
		if !isSteward(c, image) || !slices.Equal(c.Args, []string{svc}) {
			t.Errorf("%s container = %s %v, want %s [%s]", name, c.Image, c.Args, image, svc)
		}
		if e, _ := env(c, "STEWARD_VOTERS"); e.Value != wantVoters(svc, n) {
			t.Errorf("%s STEWARD_VOTERS = %q, want %q", name, e.Value, wantVoters(svc, n))
		}
		if e, _ := env(c, "STEWARD_AUTH_VOTERS"); e.Value != wantVoters("config", replicasOf(vals, "config")) {
			t.Errorf("%s STEWARD_AUTH_VOTERS = %q, want the config voters", name, e.Value)
		}
		// The replica id is the pod's name, which the StatefulSet makes
		// <name>-<ordinal>: exactly the ids listed in the voters.
		pn, _ := env(c, "POD_NAME")
		if pn.ValueFrom == nil || pn.ValueFrom.FieldRef == nil || pn.ValueFrom.FieldRef.FieldPath != "metadata.name" {
			t.Errorf("%s POD_NAME = %+v, want the downward API's metadata.name", name, pn)
		}
		if e, _ := env(c, "STEWARD_REPLICA_ID"); e.Value != "$(POD_NAME)" {
			t.Errorf("%s STEWARD_REPLICA_ID = %q, want $(POD_NAME)", name, e.Value)
		}
		if slices.Index(c.Env, pn) > slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "STEWARD_REPLICA_ID" }) {
			t.Errorf("%s: POD_NAME must come before STEWARD_REPLICA_ID to be expanded", name)
		}
		for _, want := range []string{"STEWARD_NATS_URL", "STEWARD_STREAM_REPLICAS", "STEWARD_BATCH_ENCODING", "STEWARD_AUTH", "STEWARD_AUTH_TOKEN", "STEWARD_AUTH_BOOTSTRAP_TOKEN", "STEWARD_DATABASE_URL"} {
			if _, ok := env(c, want); !ok {
				t.Errorf("%s: no %s", name, want)
			}
		}
	}
	gw, ok := m.deployments[fullname+"-gateway"]
	if !ok {
		t.Fatalf("no gateway Deployment")
	}
	if n := replicasOf(vals, "gateway"); gw.Spec.Replicas == nil || int(*gw.Spec.Replicas) != n {
		t.Errorf("gateway replicas = %v, want %d", gw.Spec.Replicas, n)
	}
	c := gw.Spec.Template.Spec.Containers[0]
	if _, ok := env(c, "STEWARD_AUTH_BOOTSTRAP_TOKEN"); ok {
		t.Errorf("the gateway follows no auth log and needs no bootstrap token")
	}
	if e, _ := env(c, "STEWARD_REGISTRY_URL"); e.Value != "http://steward-registry:8082" {
		t.Errorf("gateway STEWARD_REGISTRY_URL = %q", e.Value)
	}
}

func checkProbes(t *testing.T, m *manifests, image string) {
	seen := 0
	for _, p := range m.pods() {
		for _, c := range p.spec.Containers {
			if !isSteward(c, image) || strings.HasPrefix(p.owner, "Job ") {
				continue
			}
			seen++
			want := map[string]struct {
				probe *corev1.Probe
				path  string
			}{"readiness": {c.ReadinessProbe, "/readyz"}, "liveness": {c.LivenessProbe, "/healthz"}, "startup": {c.StartupProbe, "/healthz"}}
			for kind, w := range want {
				if w.probe == nil || w.probe.HTTPGet == nil {
					t.Errorf("%s/%s: no HTTP %s probe", p.owner, c.Name, kind)
					continue
				}
				if w.probe.HTTPGet.Path != w.path || w.probe.HTTPGet.Port.String() != "http" {
					t.Errorf("%s/%s %s probe = %s on %s, want %s on http", p.owner, c.Name, kind, w.probe.HTTPGet.Path, w.probe.HTTPGet.Port.String(), w.path)
				}
			}
			// Sized for a snapshot restore: at least five minutes to start.
			if s := c.StartupProbe; s != nil && s.PeriodSeconds*s.FailureThreshold < 300 {
				t.Errorf("%s/%s startup probe allows %d s, want >= 300", p.owner, c.Name, s.PeriodSeconds*s.FailureThreshold)
			}
			if len(c.Ports) != 1 || c.Ports[0].Name != "http" {
				t.Errorf("%s/%s ports = %+v, want one named http", p.owner, c.Name, c.Ports)
			}
		}
	}
	if seen != len(voterServices)+1 {
		t.Errorf("checked %d Steward server containers, want %d", seen, len(voterServices)+1)
	}
}

func checkPDBs(t *testing.T, m *manifests) {
	wants := []string{fullname + "-gateway"}
	for _, s := range voterServices {
		wants = append(wants, fullname+"-"+s)
	}
	if _, ok := m.statefulSets[fullname+"-nats"]; ok {
		wants = append(wants, fullname+"-nats")
	}
	for _, name := range wants {
		pdb, ok := m.pdbs[name]
		if !ok {
			t.Errorf("no PodDisruptionBudget %s", name)
			continue
		}
		if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
			t.Errorf("PDB %s: maxUnavailable %v minAvailable %v, want maxUnavailable 1", name, pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable)
		}
		var labels map[string]string
		if ss, ok := m.statefulSets[name]; ok {
			labels = ss.Spec.Template.Labels
		} else if d, ok := m.deployments[name]; ok {
			labels = d.Spec.Template.Labels
		}
		if !selects(pdb.Spec.Selector.MatchLabels, labels) || len(pdb.Spec.Selector.MatchLabels) == 0 {
			t.Errorf("PDB %s selects %v, not its workload's pods %v", name, pdb.Spec.Selector.MatchLabels, labels)
		}
	}
}

func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func checkSecurity(t *testing.T, m *manifests, image string) {
	for _, p := range m.pods() {
		ps := p.spec.SecurityContext
		if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod securityContext %+v, want runAsNonRoot and seccomp RuntimeDefault", p.owner, ps)
		}
		for _, c := range slices.Concat(p.spec.InitContainers, p.spec.Containers) {
			sc := c.SecurityContext
			if sc == nil {
				t.Errorf("%s/%s: no securityContext", p.owner, c.Name)
				continue
			}
			if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil ||
				!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 ||
				sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s/%s: securityContext %+v", p.owner, c.Name, sc)
			}
			if isSteward(c, image) && (sc.RunAsUser == nil || *sc.RunAsUser != 65532) {
				t.Errorf("%s/%s: runAsUser %v, want 65532", p.owner, c.Name, sc.RunAsUser)
			}
			if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s/%s: resources %+v, want memory requests and limits", p.owner, c.Name, c.Resources)
			}
		}
		// Only the scaler talks to the Kubernetes API.
		automount := p.spec.AutomountServiceAccountToken == nil || *p.spec.AutomountServiceAccountToken
		if automount != (p.owner == "StatefulSet "+fullname+"-scaler") {
			t.Errorf("%s: automountServiceAccountToken %v", p.owner, automount)
		}
		if strings.HasPrefix(p.owner, "StatefulSet "+fullname+"-") || strings.HasPrefix(p.owner, "Deployment ") {
			if p.owner != "StatefulSet "+fullname+"-postgresql" && len(p.spec.TopologySpreadConstraints) == 0 {
				t.Errorf("%s: no topologySpreadConstraints", p.owner)
			}
			for _, tsc := range p.spec.TopologySpreadConstraints {
				if tsc.LabelSelector == nil || !selects(tsc.LabelSelector.MatchLabels, p.meta.Labels) {
					t.Errorf("%s: topology spread selects %v, not its pods", p.owner, tsc.LabelSelector)
				}
			}
		}
	}
}

func checkRBAC(t *testing.T, m *manifests, vals map[string]any) {
	wantNS := []string{namespace}
	if sc, ok := vals["scaler"].(map[string]any); ok {
		if kd, ok := sc["kubernetesDriver"].(map[string]any); ok {
			wantNS = nil
			for _, ns := range kd["namespaces"].([]any) {
				wantNS = append(wantNS, ns.(string))
			}
		}
	}
	var gotNS []string
	for _, r := range m.roles {
		gotNS = append(gotNS, r.Namespace)
		want := []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale", "statefulsets/scale"}, Verbs: []string{"get", "patch"}}}
		if fmt.Sprint(r.Rules) != fmt.Sprint(want) {
			t.Errorf("Role %s/%s rules = %+v, want only get and patch on the scale subresources", r.Namespace, r.Name, r.Rules)
		}
	}
	if !slices.Equal(gotNS, wantNS) {
		t.Errorf("Roles in %v, want %v", gotNS, wantNS)
	}
	if len(m.roleBindings) != len(m.roles) {
		t.Errorf("%d RoleBindings for %d Roles", len(m.roleBindings), len(m.roles))
	}
	for _, b := range m.roleBindings {
		if b.RoleRef.Kind != "Role" || b.RoleRef.Name != fullname+"-scaler" || len(b.Subjects) != 1 ||
			b.Subjects[0].Kind != "ServiceAccount" || b.Subjects[0].Name != fullname+"-scaler" || b.Subjects[0].Namespace != namespace {
			t.Errorf("RoleBinding %s/%s = %+v %+v, want the scaler's service account bound to its Role", b.Namespace, b.Name, b.RoleRef, b.Subjects)
		}
	}
	if sa := m.statefulSets[fullname+"-scaler"].Spec.Template.Spec.ServiceAccountName; sa != fullname+"-scaler" {
		t.Errorf("scaler pods run as %q", sa)
	}
	if _, ok := m.serviceAccounts[fullname+"-scaler"]; !ok {
		t.Errorf("no scaler ServiceAccount")
	}
}

func checkHooks(t *testing.T, rel *release.Release, m *manifests, external bool) {
	events := map[string][]string{}
	for _, h := range rel.Hooks {
		for _, e := range h.Events {
			events[h.Kind+"/"+h.Name] = append(events[h.Kind+"/"+h.Name], string(e))
		}
	}
	migrate := []string{"pre-upgrade"}
	if external {
		migrate = []string{"pre-install", "pre-upgrade"}
	}
	want := map[string][]string{
		"Job/" + fullname + "-migrate":   migrate,
		"Job/" + fullname + "-auth-init": {"post-install", "post-upgrade"},
	}
	for k, w := range want {
		got := events[k]
		slices.Sort(got)
		if !slices.Equal(got, w) {
			t.Errorf("hook %s fires on %v, want %v", k, got, w)
		}
	}
	if len(events) != len(want) {
		t.Errorf("hooks %v, want only %v", events, slices.Sorted(maps.Keys(want)))
	}
	ai := m.jobs[fullname+"-auth-init"].Spec.Template.Spec.Containers[0]
	if e, _ := env(ai, "STEWARD_AUTH_SERVICE_TOKENS"); !strings.Contains(e.Value, "gateway=$(GATEWAY_TOKEN)") {
		t.Errorf("auth-init STEWARD_AUTH_SERVICE_TOKENS = %q", e.Value)
	}
	if mj := m.jobs[fullname+"-migrate"].Spec.Template.Spec.Containers[0]; !slices.Equal(mj.Args, []string{"migrate"}) {
		t.Errorf("migrate Job runs %v", mj.Args)
	}
}

// checkReferences: every Secret, ConfigMap, ServiceAccount and Service a
// pod names is rendered by the chart or given by the values.
func checkReferences(t *testing.T, m *manifests, vals map[string]any, existing ...string) {
	given := map[string]bool{}
	for _, s := range existing {
		given[s] = true
	}
	if db, ok := vals["database"].(map[string]any); ok {
		given[db["existingSecret"].(string)] = true
	}
	for _, p := range m.pods() {
		if sa := p.spec.ServiceAccountName; sa != "" {
			if _, ok := m.serviceAccounts[sa]; !ok {
				t.Errorf("%s: ServiceAccount %s is not rendered", p.owner, sa)
			}
		}
		for _, c := range p.spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					continue
				}
				ref := e.ValueFrom.SecretKeyRef
				s, ok := m.secrets[ref.Name]
				if !ok && !given[ref.Name] {
					t.Errorf("%s/%s %s: Secret %s is neither rendered nor given", p.owner, c.Name, e.Name, ref.Name)
					continue
				}
				if ok {
					if _, data := s.Data[ref.Key]; !data {
						if _, str := s.StringData[ref.Key]; !str {
							t.Errorf("%s/%s %s: Secret %s has no key %s", p.owner, c.Name, e.Name, ref.Name, ref.Key)
						}
					}
				}
			}
		}
		for _, v := range p.spec.Volumes {
			if v.ConfigMap != nil {
				if _, ok := m.configMaps[v.ConfigMap.Name]; !ok {
					t.Errorf("%s: ConfigMap %s is not rendered", p.owner, v.ConfigMap.Name)
				}
			}
		}
	}
	for name, svc := range m.services {
		found := false
		for _, p := range m.pods() {
			found = found || selects(svc.Spec.Selector, p.meta.Labels)
		}
		if !found {
			t.Errorf("Service %s selects no pod", name)
		}
	}
}

func checkAuthSecret(t *testing.T, m *manifests) {
	root := m.secrets[fullname+"-auth"]
	if root == nil {
		t.Fatal("no auth Secret")
	}
	for _, key := range []string{"root-token", "config-token", "registry-token", "election-token", "scaler-token", "gateway-token"} {
		if tok := string(root.Data[key]); len(tok) != 47 || !strings.HasPrefix(tok, "stw_") {
			t.Errorf("%s %q: want stw_ and 43 characters", key, tok)
		}
	}
	if root.Annotations["helm.sh/resource-policy"] != "keep" {
		t.Errorf("auth Secret is not kept on uninstall")
	}
}

// TestVariants renders the branches the two value sets do not take, each
// decoded strictly, its references checked, and what the branch is about.
func TestVariants(t *testing.T) {
	steward := func(m *manifests, component string) corev1.Container {
		if component == "gateway" {
			return m.deployments[fullname+"-gateway"].Spec.Template.Spec.Containers[0]
		}
		return m.statefulSets[fullname+"-"+component].Spec.Template.Spec.Containers[0]
	}
	for _, tc := range []struct {
		name  string
		vals  string
		check func(t *testing.T, m *manifests)
	}{
		{"auth off", "auth: {enabled: false}", func(t *testing.T, m *manifests) {
			if _, ok := m.secrets[fullname+"-auth"]; ok || m.jobs[fullname+"-auth-init"] != nil {
				t.Error("auth Secret or auth-init Job rendered with auth off")
			}
			for _, c := range []string{"config", "scaler", "gateway"} {
				if e, _ := env(steward(m, c), "STEWARD_AUTH"); e.Value != "off" {
					t.Errorf("%s STEWARD_AUTH = %q", c, e.Value)
				}
				if _, ok := env(steward(m, c), "STEWARD_AUTH_TOKEN"); ok {
					t.Errorf("%s has a token with auth off", c)
				}
			}
		}},
		{"root token for every role", "auth: {initJob: {enabled: false}}", func(t *testing.T, m *manifests) {
			checkAuthSecret(t, m)
			for _, c := range []string{"config", "gateway"} {
				if e, _ := env(steward(m, c), "STEWARD_AUTH_TOKEN"); e.ValueFrom.SecretKeyRef.Key != "root-token" {
					t.Errorf("%s token from %s, want root-token", c, e.ValueFrom.SecretKeyRef.Key)
				}
			}
		}},
		{"existing auth secret", "auth: {existingSecret: my-tokens}", func(t *testing.T, m *manifests) {
			if e, _ := env(steward(m, "registry"), "STEWARD_AUTH_TOKEN"); e.ValueFrom.SecretKeyRef.Name != "my-tokens" || e.ValueFrom.SecretKeyRef.Key != "registry-token" {
				t.Errorf("registry token from %+v", e.ValueFrom.SecretKeyRef)
			}
		}},
		{"external NATS", "nats: {enabled: false, external: {urls: 'tls://a:4222,tls://b:4222'}, auth: {existingSecret: nats-creds}}", func(t *testing.T, m *manifests) {
			if _, ok := m.statefulSets[fullname+"-nats"]; ok {
				t.Error("NATS StatefulSet rendered")
			}
			c := steward(m, "election")
			if e, _ := env(c, "STEWARD_NATS_URL"); e.Value != "tls://a:4222,tls://b:4222" {
				t.Errorf("STEWARD_NATS_URL = %q", e.Value)
			}
			if e, _ := env(c, "STEWARD_NATS_PASSWORD"); e.ValueFrom.SecretKeyRef.Name != "nats-creds" {
				t.Errorf("NATS password from %+v", e.ValueFrom.SecretKeyRef)
			}
		}},
		{"no database", "postgresql: {enabled: false}", func(t *testing.T, m *manifests) {
			if _, ok := env(steward(m, "config"), "STEWARD_DATABASE_URL"); ok || m.jobs[fullname+"-migrate"] != nil {
				t.Error("a database URL or a migrate Job without a database")
			}
		}},
		{"one voter each, no driver", "{config: {replicas: 1}, registry: {replicas: 1}, election: {replicas: 1}, scaler: {replicas: 1, kubernetesDriver: {enabled: false}}}", func(t *testing.T, m *manifests) {
			if e, _ := env(steward(m, "config"), "STEWARD_VOTERS"); e.Value != fullname+"-config-0" {
				t.Errorf("STEWARD_VOTERS = %q", e.Value)
			}
			if len(m.roles) != 0 || len(m.roleBindings) != 0 {
				t.Errorf("%d Roles, %d RoleBindings without the kubernetes driver", len(m.roles), len(m.roleBindings))
			}
			if a := m.statefulSets[fullname+"-scaler"].Spec.Template.Spec.AutomountServiceAccountToken; a == nil || *a {
				t.Error("the scaler mounts a token it does not use")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var vals map[string]any
			if err := yaml.Unmarshal([]byte(tc.vals), &vals); err != nil {
				t.Fatal(err)
			}
			rel, err := render(t, vals)
			if err != nil {
				t.Fatal(err)
			}
			m := decodeAll(t, rel)
			given := map[string]any{"database": map[string]any{"existingSecret": ""}}
			maps.Copy(given, vals)
			checkReferences(t, m, given, "my-tokens", "nats-creds")
			tc.check(t, m)
		})
	}
}

func checkExtras(t *testing.T, m *manifests, ha bool) {
	if got := len(m.serviceMonitors); got != map[bool]int{false: 0, true: 1}[ha] {
		t.Errorf("%d ServiceMonitors", got)
	}
	if got, want := len(m.networkPolicies), map[bool]int{false: 0, true: 6}[ha]; got != want {
		t.Errorf("%d NetworkPolicies, want %d", got, want)
	}
	_, pg := m.statefulSets[fullname+"-postgresql"]
	if pg == ha {
		t.Errorf("bundled PostgreSQL rendered: %v, want %v", pg, !ha)
	}
	nats, ok := m.statefulSets[fullname+"-nats"]
	if !ok {
		t.Fatal("no NATS StatefulSet")
	}
	if *nats.Spec.Replicas != 3 || len(nats.Spec.VolumeClaimTemplates) != 1 {
		t.Errorf("NATS: %d replicas, %d volume claims", *nats.Spec.Replicas, len(nats.Spec.VolumeClaimTemplates))
	}
	conf := m.configMaps[fullname+"-nats"].Data["nats.conf"]
	for i := range 3 {
		route := fmt.Sprintf("nats://%s-nats-%d.%s-nats-headless.%s.svc:6222", fullname, i, fullname, namespace)
		if !strings.Contains(conf, route) {
			t.Errorf("nats.conf has no route %s", route)
		}
	}
	for _, want := range []string{"jetstream", "$JS.API.STREAM.*.STEWARD_AUTH", "password: $STEWARD_NATS_PASSWORD"} {
		if !strings.Contains(conf, want) {
			t.Errorf("nats.conf lacks %q", want)
		}
	}
}

// TestStrictDecode: the decoder the render checks use refuses a field
// the API type does not have (here a misspelt replicas).
func TestStrictDecode(t *testing.T) {
	doc := "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec: {replica: 3}\n"
	var ss appsv1.StatefulSet
	if err := yaml.UnmarshalStrict([]byte(doc), &ss); err == nil || !strings.Contains(err.Error(), "replica") {
		t.Errorf("UnmarshalStrict(spec.replica) = %v, want an unknown field error", err)
	}
}

func TestSchemaRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals string
		want string
	}{
		{"zero voters", "config: {replicas: 0}", "replicas"},
		{"unknown key", "confg: {replicas: 3}", "confg"},
		{"unknown nested key", "gateway: {replicaCount: 3}", "replicaCount"},
		{"bad pull policy", "image: {pullPolicy: Sometimes}", "pullPolicy"},
		{"not a NATS URL", "nats: {enabled: false, external: {urls: 'http://nats:4222'}}", "urls"},
		{"bad RBAC namespace", "scaler: {kubernetesDriver: {namespaces: [Not_A_Namespace]}}", "namespaces"},
		{"dot in the full name", "fullnameOverride: my.steward", "fullnameOverride"},
		{"more stream replicas than NATS servers", "{streamReplicas: 5, nats: {replicas: 3}}", "streamReplicas (5) is more than"},
		{"an unknown batch encoding", "{batchEncoding: protobuf}", "batchEncoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var vals map[string]any
			if err := yaml.Unmarshal([]byte(tc.vals), &vals); err != nil {
				t.Fatal(err)
			}
			_, err := render(t, vals)
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("render(%s) = %v, want an error naming %s", tc.vals, err, tc.want)
			}
		})
	}
}

func TestExternalNATSNeedsURL(t *testing.T) {
	_, err := render(t, map[string]any{"nats": map[string]any{"enabled": false}})
	if err == nil || !strings.Contains(err.Error(), "nats.external.urls is required") {
		t.Errorf("render without NATS = %v, want nats.external.urls is required", err)
	}
}

// TestNATSConfig hands the rendered nats.conf to nats-server's own
// parser and option checks (the version the chart's image runs), with
// the environment the pods give it, for every server of the cluster.
func TestNATSConfig(t *testing.T) {
	rel, err := render(t, map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	conf := decodeAll(t, rel).configMaps[fullname+"-nats"].Data["nats.conf"]
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STEWARD_NATS_USER", "steward")
	t.Setenv("STEWARD_NATS_PASSWORD", "secret")
	for i := range 3 {
		t.Setenv("POD_NAME", fmt.Sprintf("%s-nats-%d", fullname, i))
		opts, err := server.ProcessConfigFile(path)
		if err != nil {
			t.Fatalf("nats.conf: %v\n%s", err, conf)
		}
		if opts.ServerName != os.Getenv("POD_NAME") || !opts.JetStream || opts.StoreDir != "/data/jetstream" || len(opts.Routes) != 3 || opts.Cluster.Port != 6222 {
			t.Errorf("server %d: name %q jetstream %v store %q routes %v cluster port %d", i, opts.ServerName, opts.JetStream, opts.StoreDir, opts.Routes, opts.Cluster.Port)
		}
		var user *server.User
		for _, u := range opts.Users {
			if u.Username == "steward" {
				user = u
			}
		}
		if user == nil || user.Password != "secret" || user.Account == nil || user.Account.Name != "STEWARD" || user.Permissions == nil ||
			!slices.Contains(user.Permissions.Publish.Allow, "$JS.API.STREAM.*.STEWARD_CONFIG") {
			t.Errorf("server %d: user steward = %+v, want password from the environment, account STEWARD, Steward's subjects", i, user)
		}
		// NewServer checks the options as a start would (JetStream in a
		// cluster needs a server name, ...), without listening.
		opts.StoreDir = t.TempDir()
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("server %d: %v", i, err)
		}
		s.Shutdown()
	}
}
