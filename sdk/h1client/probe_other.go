//go:build !unix

package h1client

// probe has nothing to keep where a socket cannot be peeked.
type probe struct{}

// alive cannot peek a socket here: only a connection with data already
// buffered is known to be unusable.
func (c *conn) alive() bool { return c.br.Buffered() == 0 }
