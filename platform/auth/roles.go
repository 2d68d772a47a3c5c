package auth

// ServiceRoleNames are the Steward roles whose processes call other
// Steward services, in the order a deployment lists their tokens.
var ServiceRoleNames = []string{"config", "registry", "election", "scaler", "gateway"}

// ServiceRole is the role a deployment gives the token of Steward's own
// process of the named kind (STEWARD_AUTH_TOKEN of `steward <name>`):
// the least its own calls need. Every process registers itself in the
// registry as steward-<name>; the scaler also reads every service's
// instances and campaigns in scalerElection (STEWARD_SCALER_ELECTION);
// the scaler also takes instances out of the registry (a rollout drains
// them) and writes the route documents of canaries (rollout-<service>);
// the gateway also discovers every service, reads the route documents
// and pushes its request signals to the scaler. Nothing else: no kv
// outside the route documents, no auth administration. It returns false
// for a name not in ServiceRoleNames.
// rolloutRoutePrefix names the route documents a canary writes
// (services/scaler/rollout.RouteName).
const rolloutRoutePrefix = "rollout-"

func ServiceRole(name, scalerElection string) (Role, bool) {
	self := Rule{Resource: Services, Prefix: "steward-" + name, Access: Write}
	var rules []Rule
	switch name {
	case "config", "registry", "election":
		rules = []Rule{self}
	case "scaler":
		// Write on services: a rollout takes the instances it stops
		// out of the registry first. Routes: a canary's weights.
		rules = []Rule{self, {Resource: Services, Access: Write}, {Resource: Elections, Prefix: scalerElection, Access: Write},
			{Resource: Routes, Prefix: rolloutRoutePrefix, Access: Write}}
	case "gateway":
		rules = []Rule{self, {Resource: Services, Access: Read}, {Resource: Routes, Access: Read}, {Resource: Metrics, Access: Write}}
	default:
		return Role{}, false
	}
	return Role{Name: "steward-" + name, Rules: rules}, true
}
