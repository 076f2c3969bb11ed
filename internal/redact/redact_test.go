package redact

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestManifestMasksSecrets(t *testing.T) {
	pw := "s3cr3t-Pa55word"
	b64 := base64.StdEncoding.EncodeToString([]byte(pw))
	in := `---
# Source: csghub/templates/postgresql.yaml
apiVersion: v1
kind: Secret
metadata:
  name: csghub-postgresql
type: Opaque
data:
  POSTGRES_PASSWORD: "` + b64 + `"
  POSTGRES_USER: "Y3NnaHVi"
---
# Source: csghub/templates/mongo.yaml
apiVersion: v1
kind: Secret
metadata:
  name: csghub-mongo
stringData:
  password: ` + pw + `
---
# Source: csghub/templates/cm.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: csghub-config
data:
  KEY: value-kept
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Secret
  metadata: {name: x}
  data: {a: "` + b64 + `"}
`
	out := Manifest(in)
	for _, leak := range []string{pw, b64} {
		if strings.Contains(out, leak) {
			t.Fatalf("%q still in:\n%s", leak, out)
		}
	}
	for _, keep := range []string{"# Source: csghub/templates/postgresql.yaml", "POSTGRES_PASSWORD: '(masked: 15 bytes)'",
		"password: '(masked: 15 bytes)'", "KEY: value-kept", "name: csghub-postgresql"} {
		if !strings.Contains(out, keep) {
			t.Fatalf("%q missing from:\n%s", keep, out)
		}
	}
	if Manifest("kind: Secret\ndata: [unclosed\n") == "kind: Secret\ndata: [unclosed\n" {
		t.Fatal("an unparsable Secret was printed as it is")
	}
}
