package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
)

// A program's configuration: read a key, change it only if no one else
// did in between, and follow every change after.
func Example() {
	ctx := context.Background()
	c, err := sdk.New("http://127.0.0.1:8080", sdk.WithToken(os.Getenv("STEWARD_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	cur, err := c.KV().Get(ctx, "/app/db/url")
	if err != nil && !errors.Is(err, sdk.ErrNotFound) {
		log.Fatal(err)
	}
	var rev int64 // 0: only if it does not exist yet
	if cur != nil {
		rev = cur.ModRevision
	}
	if _, err := c.KV().Put(ctx, "/app/db/url", "postgres://db2:5432/app", sdk.IfRevision(rev)); errors.Is(err, sdk.ErrPreconditionFailed) {
		fmt.Println("someone else changed it first")
	}
	for ev, err := range c.KV().Watch(ctx, sdk.WatchOptions{Prefix: "/app/"}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.Type, ev.Entry.Key, string(ev.Entry.Value))
	}
}

// A service registers itself for as long as it runs, and discovers
// another one's passing instances as they change.
func ExampleServices_Announce() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	c, err := sdk.New("http://127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	version := "1.4.2"
	go c.Services().Announce(ctx, "billing", "billing-1", api.Registration{Address: "10.0.0.7", Port: 9000, Version: &version}, sdk.AnnounceOptions{})
	for set, err := range c.Services().Watch(ctx, "orders", sdk.Query{Status: api.Passing}) {
		if err != nil {
			log.Fatal(err)
		}
		for _, in := range set.Instances {
			fmt.Println(in.Id, in.Address, in.Port)
		}
	}
}

// One process of several does the work: it campaigns, leads until it
// loses the lease, and fences every write with its token so that a write
// made after it lost is refused.
func ExampleElections_Campaign() {
	ctx := context.Background()
	c, err := sdk.New("http://127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	host, _ := os.Hostname()
	lead, err := c.Elections().Campaign(ctx, "report-writer", host, sdk.CampaignOptions{TTL: 10 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer lead.Resign(context.Background())
	for {
		select {
		case <-lead.Done():
			log.Printf("no longer the leader: %v", lead.Err())
			return
		case <-time.After(time.Second):
			if _, err := c.KV().Put(ctx, "/reports/last", time.Now(), sdk.WithFence(lead.Fence())); err != nil {
				log.Printf("write refused: %v", err)
			}
		}
	}
}
