package auth

// ServiceRoleNames are the Steward roles whose processes call other
// Steward services, in the order a deployment lists their tokens.
var ServiceRoleNames = []string{"config", "registry", "election", "scaler", "gateway"}

// ServiceRole is the role a deployment gives the token of Steward's own
// process of the named kind (STEWARD_AUTH_TOKEN of `steward <name>`):
// the least its own calls need. Every process registers itself in the
// registry as steward-<name>; the scaler also reads every service's
// instances and campaigns in scalerElection (STEWARD_SCALER_ELECTION);
// the gateway also discovers every service, reads the route documents
// and pushes its request signals to the scaler. Nothing else: no kv
// outside the route documents, no auth administration. It returns false
// for a name not in ServiceRoleNames.
func ServiceRole(name, scalerElection string) (Role, bool) {
	self := Rule{Resource: Services, Prefix: "steward-" + name, Access: Write}
	var rules []Rule
	switch name {
	case "config", "registry", "election":
		rules = []Rule{self}
	case "scaler":
		rules = []Rule{self, {Resource: Services, Access: Read}, {Resource: Elections, Prefix: scalerElection, Access: Write}}
	case "gateway":
		rules = []Rule{self, {Resource: Services, Access: Read}, {Resource: Routes, Access: Read}, {Resource: Metrics, Access: Write}}
	default:
		return Role{}, false
	}
	return Role{Name: "steward-" + name, Rules: rules}, true
}
