package valuemigrate

import (
	"encoding/json"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
)

// node is a key of the values a chart knows. A map node lists its keys; one
// that ends up with none (an empty `{}` in values.yaml, e.g. labels,
// annotations, nodeSelector, server.agenticflow) is free-form, as is a node
// whose schema allows additional properties. A leaf (a scalar, a list, null)
// accepts anything below it.
type node struct {
	keys map[string]*node
	leaf bool // accepts anything below
}

func (n *node) child(k string) *node {
	if n.keys == nil {
		n.keys = map[string]*node{}
	}
	c, ok := n.keys[k]
	if !ok {
		c = &node{}
		n.keys[k] = c
	}
	return c
}

// addValues records the keys of a values tree under n.
func (n *node) addValues(vals map[string]any) {
	for k, v := range vals {
		c := n.child(k)
		if m, ok := v.(map[string]any); ok {
			c.keys = orEmpty(c.keys)
			c.addValues(m)
		} else {
			c.leaf = true
		}
	}
}

func orEmpty(m map[string]*node) map[string]*node {
	if m == nil {
		return map[string]*node{}
	}
	return m
}

// addSchema records the properties of a JSON schema under n (a chart's
// values.schema.json may declare keys its values.yaml leaves out).
func (n *node) addSchema(s map[string]any) {
	if ap, ok := s["additionalProperties"]; ok && ap != false {
		n.leaf = true
	}
	if _, ok := s["patternProperties"]; ok {
		n.leaf = true
	}
	if props, ok := s["properties"].(map[string]any); ok {
		for k, v := range props {
			c := n.child(k)
			sub, _ := v.(map[string]any)
			if t, _ := sub["type"].(string); t != "" && t != "object" {
				c.leaf = true
			}
			if _, isObj := sub["properties"]; isObj || sub["type"] == "object" {
				c.keys = orEmpty(c.keys)
				// an object without properties declares nothing: free-form
				if _, hasProps := sub["properties"]; !hasProps {
					c.leaf = true
				}
			} else if sub["type"] == nil {
				c.leaf = true // oneOf, $ref, ...: anything
			}
			c.addSchema(sub)
		}
	}
	for _, key := range []string{"allOf", "anyOf", "oneOf"} {
		if list, ok := s[key].([]any); ok {
			for _, x := range list {
				if sub, ok := x.(map[string]any); ok {
					n.addSchema(sub)
				}
			}
		}
	}
}

// Known builds the tree of keys ch knows: its values.yaml and schema, each
// subchart's under its alias (or name), the dependencies' condition paths,
// and `global` and `tags` (read by Helm and every subchart: free-form).
func Known(ch *chart.Chart) *node {
	n := &node{keys: map[string]*node{}}
	addChart(n, ch)
	n.child("global").leaf = true
	n.child("tags").leaf = true
	return n
}

func addChart(n *node, ch *chart.Chart) {
	n.keys = orEmpty(n.keys)
	n.addValues(ch.Values)
	if len(ch.Schema) > 0 {
		var s map[string]any
		if json.Unmarshal(ch.Schema, &s) == nil {
			n.addSchema(s)
		}
	}
	n.child("global").leaf = true // a subchart's own `global` too
	// the loaded subcharts, under the alias of the dependency that names them
	subs := map[string][]*chart.Chart{}
	for _, sub := range ch.Dependencies() {
		subs[sub.Name()] = append(subs[sub.Name()], sub)
	}
	used := map[*chart.Chart]bool{}
	if ch.Metadata != nil {
		for _, d := range ch.Metadata.Dependencies {
			key := d.Name
			if d.Alias != "" {
				key = d.Alias
			}
			c := n.child(key)
			for _, sub := range subs[d.Name] {
				if d.Version == "" || len(subs[d.Name]) == 1 || sub.Metadata.Version == d.Version {
					addChart(c, sub)
					used[sub] = true
				}
			}
			for _, cond := range strings.Split(d.Condition, ",") {
				if cond = strings.TrimSpace(cond); cond != "" {
					addPath(n, strings.Split(cond, "."))
				}
			}
		}
	}
	for _, sub := range ch.Dependencies() {
		if !used[sub] { // vendored without a Chart.yaml entry: under its name
			addChart(n.child(sub.Name()), sub)
		}
	}
}

func addPath(n *node, path []string) {
	for _, k := range path[:len(path)-1] {
		n = n.child(k)
		n.keys = orEmpty(n.keys)
	}
	n.child(path[len(path)-1]).leaf = true
}

// Unknown lists, sorted, the keys of vals that ch does not know (dotted
// paths; below an unknown key nothing more is listed).
func Unknown(vals map[string]any, ch *chart.Chart) []string {
	var out []string
	walk(Known(ch), vals, nil, &out)
	sort.Strings(out)
	return out
}

func walk(n *node, vals map[string]any, prefix []string, out *[]string) {
	if n.leaf || len(n.keys) == 0 {
		return // free-form
	}
	for k, v := range vals {
		c, ok := n.keys[k]
		path := append(append([]string(nil), prefix...), k)
		if !ok {
			*out = append(*out, strings.Join(path, "."))
			continue
		}
		if m, ok := v.(map[string]any); ok && c.keys != nil {
			walk(c, m, path, out)
		}
	}
}
