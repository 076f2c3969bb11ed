package dbpod

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Server is one external PostgreSQL server as the release's services reach it:
// services pointing at the same host, port and user share one server (and one
// client pod). The password is kept out of JSON and out of every string the
// plugin prints.
type Server struct {
	Host      string   `json:"host"`
	Port      int      `json:"port"`
	User      string   `json:"user"`
	SSLMode   string   `json:"sslmode,omitempty"`
	Databases []string `json:"databases"`
	password  string
}

// Key names the server in manifests and messages: user@host:port.
func (s *Server) Key() string { return fmt.Sprintf("%s@%s:%d", s.User, s.Host, s.Port) }

// Password is the one the release's values give for this server.
func (s *Server) Password() string { return s.password }

// SetPassword is for callers that take the credentials from elsewhere (tests,
// or an older revision's values).
func (s *Server) SetPassword(pw string) { s.password = pw }

// ExternalServers reads, from a release's computed values, every PostgreSQL
// database its services use and where, as the chart's common.postgresql.config
// resolves it: a service's own `<service>.postgresql.{host,port,user,password,
// database}` over `global.postgresql.external.*`; the database defaults to
// `<release>_<service>` ("-" becomes "_"). The chart's `postgresql.databases`
// (what its init creates) belong to the global server. Servers come sorted by
// key, databases by name. Only meaningful with global.postgresql.enabled=false.
func ExternalServers(values map[string]any, release string) ([]*Server, error) {
	global := mapAt(values, "global", "postgresql", "external")
	base := conn{host: str(global["host"]), port: num(global["port"], 5432), user: str(global["user"]),
		password: str(global["password"]), sslmode: str(global["sslmode"])}
	if base.user == "" {
		base.user = DefaultUser
	}
	byKey := map[string]*Server{}
	owner := map[string]string{} // database -> server key of the service using it
	add := func(c conn, db string) error {
		if c.host == "" {
			return fmt.Errorf("global.postgresql.enabled is false but no PostgreSQL host is set for database %s (global.postgresql.external.host)", db)
		}
		s := &Server{Host: c.host, Port: c.port, User: c.user, SSLMode: c.sslmode, password: c.password}
		if have, ok := byKey[s.Key()]; ok {
			s = have
			if s.password == "" {
				s.password = c.password
			}
			if s.SSLMode == "" {
				s.SSLMode = c.sslmode
			}
		} else {
			byKey[s.Key()] = s
		}
		for _, d := range s.Databases {
			if d == db {
				return nil
			}
		}
		s.Databases = append(s.Databases, db)
		return nil
	}
	names := make([]string, 0, len(values))
	for k := range values {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, svc := range names {
		if svc == "global" || svc == "postgresql" {
			continue
		}
		m, ok := values[svc].(map[string]any)
		if !ok {
			continue
		}
		pg, ok := m["postgresql"].(map[string]any)
		if !ok {
			continue
		}
		c := base
		if v := str(pg["host"]); v != "" {
			c.host = v
		}
		if _, ok := pg["port"]; ok {
			c.port = num(pg["port"], c.port)
		}
		if v := str(pg["user"]); v != "" {
			c.user = v
		}
		if v := str(pg["password"]); v != "" {
			c.password = v
		}
		if v := str(pg["sslmode"]); v != "" {
			c.sslmode = v
		}
		db := str(pg["database"])
		if db == "" {
			db = strings.ReplaceAll(release+"_"+svc, "-", "_")
		}
		if err := add(c, db); err != nil {
			return nil, err
		}
		owner[db] = (&Server{Host: c.host, Port: c.port, User: c.user}).Key()
	}
	if list, ok := mapAt(values, "postgresql")["databases"].([]any); ok {
		for _, x := range list {
			db := str(x)
			if db == "" {
				continue
			}
			if k, ok := owner[db]; ok && k != (&Server{Host: base.host, Port: base.port, User: base.user}).Key() {
				continue // a service moved it to another server
			}
			if err := add(base, db); err != nil {
				return nil, err
			}
		}
	}
	if len(byKey) == 0 {
		if base.host == "" {
			return nil, fmt.Errorf("global.postgresql.enabled is false but global.postgresql.external.host is not set")
		}
		return nil, fmt.Errorf("no database of the release found in its values (services' postgresql.database, postgresql.databases)")
	}
	out := make([]*Server, 0, len(byKey))
	for _, s := range byKey {
		sort.Strings(s.Databases)
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out, nil
}

// ClientImage is the chart's own PostgreSQL image (postgresql.image, registry
// from there or global.image.registry): its pg_dump and psql match the server
// the chart ships.
func ClientImage(values map[string]any) string {
	img := mapAt(values, "postgresql", "image")
	repo := str(img["repository"])
	if repo == "" {
		repo = "opencsghq/postgres"
	}
	tag := str(img["tag"])
	if tag == "" {
		tag = "15"
	}
	reg := str(img["registry"])
	if reg == "" {
		reg = str(mapAt(values, "global", "image")["registry"])
	}
	if reg != "" {
		return reg + "/" + repo + ":" + tag
	}
	return repo + ":" + tag
}

type conn struct {
	host, user, password, sslmode string
	port                          int
}

func mapAt(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		next, ok := m[p].(map[string]any)
		if !ok {
			return map[string]any{}
		}
		m = next
	}
	return m
}

func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

func num(v any, def int) int {
	switch x := v.(type) {
	case int:
		return x
	case int64:
		return int(x)
	case float64:
		return int(x)
	case string:
		if n, err := strconv.Atoi(x); err == nil {
			return n
		}
	}
	return def
}
