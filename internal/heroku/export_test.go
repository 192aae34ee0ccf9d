package heroku

// RefusedRemembered is how many add-ons' refused tokens the client
// remembers.
func (c *Client) RefusedRemembered() int {
	c.refused.mu.Lock()
	defer c.refused.mu.Unlock()
	return len(c.refused.byID)
}
