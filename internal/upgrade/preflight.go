package upgrade

import (
	"context"
	"fmt"
	"helm.sh/helm/v3/pkg/chartutil"
	"strings"

	"github.com/Masterminds/semver/v3"
	"k8s.io/client-go/kubernetes"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/csghub"
	"github.com/opencsgs/helm-csghub/internal/dbpod"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/lock"
	"github.com/opencsgs/helm-csghub/internal/migrate"
	"github.com/opencsgs/helm-csghub/internal/netpol"
	"github.com/opencsgs/helm-csghub/internal/plan"
	"github.com/opencsgs/helm-csghub/internal/progress"
)

// MinKubernetes is the oldest API server the plugin is tested against.
var MinKubernetes = semver.MustParse("1.25.0")

type permission struct {
	verb, group, resource, sub, namespace string
}

// preflight checks, before anything changes, that the upgrade can run to its
// end: cluster, release state, permissions, leftovers and backup space.
// Warnings are returned separately; the error is the first blocking problem.
func (u *Upgrade) preflight(ctx context.Context, p *plan.Prepared) (warnings []string, err error) {
	cs := u.Kube.Clientset
	sv, err := cs.Discovery().ServerVersion()
	if err != nil {
		return nil, errs.Preconditionf("cluster not reachable: %v", err)
	}
	kv, err := semver.NewVersion(sv.GitVersion)
	if err == nil && kv.LessThan(MinKubernetes) {
		return nil, errs.Preconditionf("Kubernetes %s is older than the supported %s", sv.GitVersion, MinKubernetes)
	}
	rel := p.Release
	switch st := rel.Info.Status; {
	case st.IsPending():
		return nil, errs.Preconditionf("release %q is %s at revision %d: another operation is running or was killed; if `helm csghub status` shows a killed helm csghub run's lease, rerun with --recover (or `helm csghub rollback`); else check `helm history %s -n %s` and, once nothing runs, `helm rollback %s %d`",
			rel.Name, st, rel.Version, rel.Name, rel.Namespace, rel.Name, rel.Version-1)
	case st.String() != "deployed":
		return nil, errs.Preconditionf("release %q is %s at revision %d, not deployed: fix or roll it back first (`helm csghub rollback`)", rel.Name, st, rel.Version)
	}
	// a target that does not render would fail at the Helm upgrade, after the
	// backup and the migrations: refused now (exit 4), nothing changed
	if err := p.CheckRender(); err != nil {
		return nil, err
	}
	if max := u.Release.Settings.MaxHistory; max > 0 && max < 2 {
		warnings = append(warnings, fmt.Sprintf("Helm keeps only %d revision(s) (HELM_MAX_HISTORY): the guide asks for at least 2 to roll back; set HELM_MAX_HISTORY=10", max))
	}
	if left, err := netpol.FindLeftover(ctx, cs, u.Release.Namespace); err != nil {
		return warnings, errs.Failedf("looking for a leftover NetworkPolicy: %w", err)
	} else if left != nil {
		return warnings, policyRefusal(ctx, cs, u.Release.Namespace, u.Release.Name, u.DryRun, left)
	}
	// objects Helm could not take or patch: refused before the backup
	if err := p.LiveRefusal(u.RecreateStatefulSets); err != nil {
		return warnings, err
	}
	ns := u.Release.Namespace
	perms := []permission{
		{"get", "", "secrets", "", ns},
		{"create", "", "pods", "exec", ns},
		{"create", "", "pods", "portforward", ns},
		{"create", "networking.k8s.io", "networkpolicies", "", ns},
		{"delete", "networking.k8s.io", "networkpolicies", "", ns},
		{"create", "coordination.k8s.io", "leases", "", ns},
		{"update", "apps", "deployments", "", ns},
	}
	if p.Live != nil && p.Live.Immutable != nil && len(p.Live.Immutable.DeleteJobs) > 0 {
		perms = append(perms, permission{"delete", "batch", "jobs", "", ns})
	}
	if p.Live != nil && p.Live.Immutable != nil && len(p.Live.Immutable.StatefulSets) > 0 {
		perms = append(perms, permission{"delete", "apps", "statefulsets", "", ns})
	}
	for _, m := range migrate.Permissions(p.Migrate, p.Migrations) {
		perms = append(perms, permission{m.Verb, m.Group, m.Resource, m.Subresource, m.Namespace})
	}
	var denied []string
	for _, pm := range perms {
		ok, err := u.Kube.CanIGroup(ctx, pm.namespace, pm.verb, pm.group, pm.resource, pm.sub, "")
		if err != nil {
			return warnings, errs.Failedf("checking permissions: %w", err)
		}
		if !ok {
			r := pm.resource
			if pm.sub != "" {
				r += "/" + pm.sub
			}
			if pm.group != "" {
				r += "." + pm.group
			}
			denied = append(denied, pm.verb+" "+r)
		}
	}
	if len(denied) > 0 {
		return warnings, errs.Preconditionf("missing permissions in namespace %q: %s", ns, strings.Join(denied, ", "))
	}
	// the backup location (values are backed up even with --skip-db-backup):
	// a bucket that is missing, refuses the credentials or does not answer
	// stops the upgrade here, before anything changes
	cat := backup.CatalogAt(u.BackupDir).WithSSE(u.BackupSSE)
	if err := cat.Check(ctx, true); err != nil {
		return warnings, err
	}
	if !u.SkipDBBackup {
		if err := u.checkBackupSpace(ctx, p, cat); err != nil {
			return warnings, err
		}
	}
	// e.g. MongoDB reachable for the Dataflow logs export
	if err := migrate.Preflight(ctx, p.Migrate, p.Migrations); err != nil {
		return warnings, errs.Preconditionf("%v", err)
	}
	return warnings, nil
}

// checkBackupSpace makes sure the backup folder is writable and has room for
// the dump, estimated from the database size (SQL text is about the size of
// the data; zstd shrinks it several times; half the data size is asked for).
func (u *Upgrade) checkBackupSpace(ctx context.Context, p *plan.Prepared, cat backup.Catalog) error {
	dir := cat.Root
	var size int64
	if csghub.ExternalPostgres(p.Values) {
		// the servers must answer from inside the cluster, through the
		// client pods the backup will use, before anything changes
		all, err := chartutil.CoalesceValues(p.Release.Chart, p.Release.Config)
		if err != nil {
			return errs.Failedf("computed values of revision %d: %v", p.Release.Version, err)
		}
		clients, err := backup.StartExternalClients(ctx, u.Kube, u.Release.Namespace, u.Release.Name, all, u.PGImage, u.PGPodTimeout, u.Log)
		if err != nil {
			return err
		}
		defer dbpod.CloseAll(clients)
		for _, c := range clients {
			info, _, err := c.InspectDatabases(ctx, c.Server.Databases)
			if err != nil {
				return errs.Preconditionf("PostgreSQL %s: %v", c.Server.Key(), err)
			}
			for _, d := range info.Databases {
				size += d.Bytes
			}
		}
	} else {
		pod := dbpod.New(u.Kube, u.Release.Namespace, u.Release.Name)
		if err := pod.CheckReady(ctx); err != nil {
			return err
		}
		info, err := pod.Inspect(ctx)
		if err != nil {
			return errs.Preconditionf("PostgreSQL in %s/%s: %v", pod.Namespace, pod.Name, err)
		}
		for _, d := range info.Databases {
			size += d.Bytes
		}
	}
	if cat.InBucket() {
		return nil // the dump streams into the bucket: no local room needed
	}
	if free, ok := freeBytes(dir); ok {
		if need := size / 2; free < need {
			return errs.Preconditionf("backup folder %s has %s free, the dump needs about %s (databases hold %s)",
				dir, progress.HumanBytes(free), progress.HumanBytes(need), progress.HumanBytes(size))
		}
	}
	return nil
}

// policyRefusal refuses the upgrade for the restore's NetworkPolicy. A dry
// run holds no lock: a live lease is then a running restore's, whose policy
// is in use (wait; do not delete it), not one an interrupted restore left
// (issue 27 item 10). A real run holds the lease itself: the policy is left.
func policyRefusal(ctx context.Context, cs kubernetes.Interface, ns, name string, dryRun bool, left *netpol.Leftover) error {
	if dryRun {
		if info, err := lock.Inspect(ctx, cs, ns, name); err == nil && info != nil && info.Alive {
			left.RunningBy = info.Holder
		}
	}
	return errs.Preconditionf("%s", left.Hint())
}
