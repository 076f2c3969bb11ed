// Package redact masks secret data in what the plugin prints. A rendered
// manifest holds every Secret of the chart (the PostgreSQL password among
// them, base64 is no protection): like helm-diff, the keys of a Secret's
// data and stringData stay visible and each value is replaced by its size.
package redact

import (
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"
)

// Manifest returns a multi-document YAML manifest with the data of every
// Secret masked. Other documents are returned as they are. A document that
// mentions a Secret but cannot be parsed is replaced whole: when in doubt,
// print less.
func Manifest(manifest string) string {
	docs := splitDocs(manifest)
	for i, d := range docs {
		docs[i] = maskDoc(d)
	}
	return strings.Join(docs, "---\n")
}

// splitDocs splits at "---" separator lines, keeping each document's text.
func splitDocs(s string) []string {
	var docs []string
	var cur strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		if strings.TrimRight(line, " \t\r\n") == "---" {
			docs = append(docs, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(line)
	}
	return append(docs, cur.String())
}

func maskDoc(doc string) string {
	// keep the "# Source: ..." comments Helm puts first
	var head strings.Builder
	body := doc
	for strings.HasPrefix(strings.TrimLeft(body, " \t"), "#") || strings.HasPrefix(body, "\n") {
		nl := strings.IndexByte(body, '\n')
		if nl < 0 {
			return doc
		}
		head.WriteString(body[:nl+1])
		body = body[nl+1:]
	}
	if strings.TrimSpace(body) == "" {
		return doc
	}
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(body), &obj); err != nil {
		if strings.Contains(body, "Secret") {
			return head.String() + "# (masked: a document mentioning a Secret that could not be parsed)\n"
		}
		return doc
	}
	if !maskObject(obj) {
		return doc
	}
	out, err := yaml.Marshal(obj)
	if err != nil {
		return head.String() + "# (masked Secret)\n"
	}
	return head.String() + string(out)
}

// maskObject masks obj when it is a Secret, or the Secrets of a List; it
// reports whether it changed anything.
func maskObject(obj map[string]any) bool {
	kind, _ := obj["kind"].(string)
	switch {
	case kind == "Secret":
		for _, field := range []string{"data", "stringData"} {
			if m, ok := obj[field].(map[string]any); ok {
				for k, v := range m {
					m[k] = masked(field, v)
				}
			}
		}
		return true
	case strings.HasSuffix(kind, "List"):
		items, _ := obj["items"].([]any)
		changed := false
		for _, it := range items {
			if m, ok := it.(map[string]any); ok && maskObject(m) {
				changed = true
			}
		}
		return changed
	}
	return false
}

func masked(field string, v any) string {
	s := fmt.Sprint(v)
	n := len(s)
	if field == "data" { // base64: the size of what it encodes
		n = len(s) * 3 / 4
		n -= strings.Count(s, "=")
	}
	return fmt.Sprintf("(masked: %d bytes)", n)
}
