package diff

import (
	"fmt"
	"io"
	"strings"
)

// ANSI colours, only when Write is asked for them (a terminal).
const (
	red    = "\x1b[31m"
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	cyan   = "\x1b[36m"
	bold   = "\x1b[1m"
	reset  = "\x1b[0m"
)

var signs = map[Change]string{Added: "+", Changed: "~", Removed: "-"}

// Write prints the report for people: the value rewrites, then per object a
// summary line ("~ Deployment csghub/csghub-server (image, env)"), the
// plugin's notes, the live drift and the unified diff; hooks and CRDs
// apart; totals last.
func Write(w io.Writer, r *Report, color bool) {
	paint := func(c, s string) string {
		if !color {
			return s
		}
		return c + s + reset
	}
	changeColor := map[Change]string{Added: green, Changed: yellow, Removed: red}
	fmt.Fprintf(w, "%s\n", paint(bold, fmt.Sprintf("Changes of the Helm upgrade (revision %d's manifest -> the target render):", r.FromRevision)))
	if !r.SecretsShown {
		fmt.Fprintln(w, "(Secrets' values masked: --show-secrets prints them)")
	}
	for _, v := range r.ValueRewrites {
		fmt.Fprintf(w, "values: %s\n", v)
	}
	section := func(title string, objs []*Object) {
		if title != "" && len(objs) > 0 {
			fmt.Fprintf(w, "\n%s\n", paint(bold, title))
		}
		for _, o := range objs {
			line := signs[o.Change] + " " + o.Ref()
			if len(o.Fields) > 0 {
				line += " (" + strings.Join(o.Fields, ", ") + ")"
			}
			fmt.Fprintf(w, "\n%s\n", paint(changeColor[o.Change], line))
			for _, n := range o.Notes {
				fmt.Fprintf(w, "  note: %s\n", n)
			}
			if len(o.Drift) > 0 {
				fmt.Fprintf(w, "  %s\n", paint(red, "drift: changed by hand since the last deploy, the upgrade overwrites: "+strings.Join(o.Drift, ", ")))
			}
			for _, l := range o.Diff {
				c := ""
				switch {
				case strings.HasPrefix(l, "@@"):
					c = cyan
				case strings.HasPrefix(l, "+"):
					c = green
				case strings.HasPrefix(l, "-"):
					c = red
				}
				if c != "" {
					l = paint(c, l)
				}
				fmt.Fprintf(w, "%s\n", l)
			}
		}
	}
	section("", r.Objects)
	section("Hooks (run by Helm, never owned by the release):", r.Hooks)
	if len(r.CRDs) > 0 {
		fmt.Fprintf(w, "\n%s\n", paint(bold, "CustomResourceDefinitions in the manifest (versions, * = storage):"))
		for _, c := range r.CRDs {
			vs := strings.Join(c.From, ",")
			if c.Change == Added {
				vs = strings.Join(c.To, ",")
			} else if c.Change == Changed {
				vs += " -> " + strings.Join(c.To, ",")
			}
			fmt.Fprintf(w, "%s\n", paint(changeColor[c.Change], fmt.Sprintf("%s CustomResourceDefinition %s (%s)", signs[c.Change], c.Name, vs)))
		}
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	t := r.Totals
	fmt.Fprintf(w, "\n%s\n", paint(bold, fmt.Sprintf("Objects: %s. Hooks: %s. CRDs: %s. Live drift: %d object(s).",
		t.Objects, t.Hooks, t.CRDs, t.Drifted)))
}
