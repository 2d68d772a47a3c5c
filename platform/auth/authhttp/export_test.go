package authhttp

// Held is how many requests the Guard watches (hold) now.
func (g *Guard) Held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.active)
}
