package diff

import (
	"encoding/base64"
	"fmt"
	"regexp"
)

// MaskSecret returns a copy of the Secret obj whose data and stringData
// values are replaced by markers; other is the same Secret on the other side
// of the comparison (nil when there is none), so each marker says whether
// the value changed without showing it: "(masked: 12 bytes, unchanged)",
// and for a changed value "(masked: 12 bytes, before)" on the old side,
// "(masked: 16 bytes, changed)" on the new (two different lines, so the
// diff shows the change even when the sizes are equal). Values are
// compared as Kubernetes stores them: stringData merged over decoded data.
// isNew tells which side obj is. A nil obj stays nil.
func MaskSecret(obj, other map[string]any, isNew bool) map[string]any {
	return mask(obj, other, isNew, secretValues, func(string) bool { return true }, "data", "stringData")
}

// secretKey matches the ConfigMap keys whose values are credentials
// (CSGHub's runner ConfigMap holds API_TOKEN).
var secretKey = regexp.MustCompile(`(?i)(password|passwd|token|secret|api_?key|access_?key|private_?key|credential)`)

// MaskConfigMap masks, as MaskSecret, the values of a ConfigMap's keys
// that name a credential (API_TOKEN, *_PASSWORD, ...); it reports whether
// it masked any.
func MaskConfigMap(obj, other map[string]any, isNew bool) (map[string]any, bool) {
	if obj == nil {
		return nil, false
	}
	m, _ := obj["data"].(map[string]any)
	found := false
	for k := range m {
		found = found || secretKey.MatchString(k)
	}
	if !found {
		return obj, false
	}
	return mask(obj, other, isNew, configMapValues, secretKey.MatchString, "data"), true
}

func configMapValues(obj map[string]any) map[string]string {
	out := map[string]string{}
	m, _ := obj["data"].(map[string]any)
	for k, v := range m {
		out[k] = fmt.Sprint(v)
	}
	return out
}

func mask(obj, other map[string]any, isNew bool, values func(map[string]any) map[string]string, masked func(string) bool, fields ...string) map[string]any {
	if obj == nil {
		return nil
	}
	out := make(map[string]any, len(obj))
	for k, v := range obj {
		out[k] = v
	}
	mine, theirs := values(obj), values(other)
	for _, field := range fields {
		m, ok := obj[field].(map[string]any)
		if !ok {
			if obj[field] != nil {
				out[field] = "(masked)"
			}
			continue
		}
		mm := make(map[string]any, len(m))
		for k, raw := range m {
			if !masked(k) {
				mm[k] = raw
				continue
			}
			v := mine[k]
			state := ""
			switch ov, ok := theirs[k]; {
			case other == nil:
			case !ok && isNew:
				state = ", added"
			case !ok:
				state = ", removed"
			case ov == v:
				state = ", unchanged"
			case isNew:
				state = ", changed"
			default:
				state = ", before"
			}
			mm[k] = fmt.Sprintf("(masked: %d bytes%s)", len(v), state)
		}
		out[field] = mm
	}
	return out
}

// secretValues are a Secret's values as stored: data decoded, stringData
// over it. A data value that is not base64 is kept as it is (compared, never
// printed).
func secretValues(obj map[string]any) map[string]string {
	out := map[string]string{}
	if obj == nil {
		return out
	}
	if m, ok := obj["data"].(map[string]any); ok {
		for k, v := range m {
			s := fmt.Sprint(v)
			if b, err := base64.StdEncoding.DecodeString(s); err == nil {
				s = string(b)
			}
			out[k] = s
		}
	}
	if m, ok := obj["stringData"].(map[string]any); ok {
		for k, v := range m {
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}
