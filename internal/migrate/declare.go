package migrate

// What a migration declares about itself, so that preflight, the CLI and
// upgrade never name one: a new migration is one new file.

// Permission is one RBAC right preflight checks before anything changes
// (Namespace "" for cluster-scoped resources).
type Permission struct {
	Verb, Group, Resource, Subresource, Namespace string
}

// Permissioned is implemented by migrations that need rights beyond the
// upgrade's own.
type Permissioned interface {
	Permissions(c *Context) []Permission
}

// Permissions are the rights the migrations in ms declare, in order.
func Permissions(c *Context, ms []Migration) []Permission {
	var out []Permission
	for _, m := range ms {
		if p, ok := m.(Permissioned); ok {
			out = append(out, p.Permissions(c)...)
		}
	}
	return out
}

// Switch is an opt-out a migration offers as a command-line flag of the
// commands that run migrations (upgrade, migrate, plan).
type Switch struct {
	Flag string // e.g. "skip-dataflow-logs"
	// Help is the flag's help per command name; "" hides it from that command.
	Help map[string]string
}

// Switchable is implemented by migrations that offer opt-outs.
type Switchable interface {
	Switches() []*Switch
}

// Switches are the opt-outs of every registered migration, in version order.
func Switches() []*Switch {
	var out []*Switch
	for _, m := range registry {
		if s, ok := m.(Switchable); ok {
			out = append(out, s.Switches()...)
		}
	}
	return out
}

// Off reports whether the operator turned s off for this run.
func (c *Context) Off(s *Switch) bool { return c.Skip[s] }

// FollowUp is implemented by migrations that leave the operator a step to do
// after a plain helm upgrade (migrate does not run PostUpgrade): the line
// says which command does it.
type FollowUp interface {
	FollowUp(c *Context) string
}

// FollowUps are the follow-up lines of the results that applied something.
func FollowUps(c *Context, ms []Migration, results []Result) []string {
	applied := map[string]bool{}
	for _, r := range results {
		if !r.AlreadyApplied {
			applied[r.Name] = true
		}
	}
	var out []string
	for _, m := range ms {
		if f, ok := m.(FollowUp); ok && applied[m.Name()] {
			out = append(out, f.FollowUp(c))
		}
	}
	return out
}
