package collector

// SetAllowedExporters replaces collector.allowed_exporters while running
// (a configuration reload). The hot path reads the list with one atomic
// load; an invalid list changes nothing and is returned as an error.
func (c *Collector) SetAllowedExporters(list []string) error {
	allowed, err := parseAllowed(list)
	if err != nil {
		return err
	}
	c.allowed.Store(&allowed)
	return nil
}
