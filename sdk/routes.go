package sdk

import (
	"context"

	"github.com/stewardhq/steward/sdk/api"
)

// RoutesPrefix is the config key prefix the gateway's route documents
// live under: the document of route name is the key RoutesPrefix+name.
// Every gateway follows the prefix and applies a change within moments.
const RoutesPrefix = "/steward/gateway/routes/"

// Routes are the gateway's routes: documents in the config service that
// every gateway follows, and the table a gateway holds in force.
type Routes struct{ c *Client }

// Routes are the gateway's routes.
func (c *Client) Routes() Routes { return Routes{c} }

// Status is the routing table of the gateway the Client calls: the
// routes in force, the documents it rejected and why, and the config
// revision it has read up to. Only a gateway answers it.
func (r Routes) Status(ctx context.Context) (*api.RouteStatus, error) {
	return decode[api.RouteStatus](r.c.api.GatewayRoutes(ctx, &api.GatewayRoutesParams{}))
}

// Get reads route name's document as stored; ErrNotFound when there is
// none.
func (r Routes) Get(ctx context.Context, name string) (*KeyValue, error) {
	return r.c.KV().Get(ctx, RoutesPrefix+name)
}

// Put stores doc (the route's JSON document, or a value to marshal) as
// route name. The config service stores any JSON: a gateway that finds
// the document invalid keeps the route's previous version and lists the
// document under Status's Rejected.
func (r Routes) Put(ctx context.Context, name string, doc any, opts ...WriteOption) (*KeyValue, error) {
	return r.c.KV().Put(ctx, RoutesPrefix+name, doc, opts...)
}

// Delete removes route name; ErrNotFound when there is none.
func (r Routes) Delete(ctx context.Context, name string, opts ...WriteOption) error {
	return r.c.KV().Delete(ctx, RoutesPrefix+name, opts...)
}
