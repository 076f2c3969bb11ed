package devenv

import (
	"context"
	"fmt"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/opencsgs/helm-csghub/internal/dbpod"
)

// PlayClientPods plays the kubelet for the plugin's PostgreSQL client pods
// (label csghub.opencsg.com/pg-client=<release>) of an external database:
// KWOK runs a pod's exec on this machine with only the env of its Exec rule,
// so for each new client pod the rule gets the variables of the Secrets the
// pod's envFrom names, as a kubelet would resolve them. The Secret's
// PGHOST/PGPORT (the chart's external host and port) then reach a local
// server. The rule is removed with the pod. Runs until ctx ends.
func (s *Stack) PlayClientPods(ctx context.Context, namespace, release string, logf func(string, ...any)) error {
	pods := func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
		return f.Core().V1().Pods().Informer()
	}
	return watchAdded(ctx, s.Clientset, namespace, dbpod.ClientLabel+"="+release, pods, func(obj any) {
		if pod, ok := obj.(*corev1.Pod); ok {
			if err := s.attachClientPod(ctx, pod); err != nil && ctx.Err() == nil {
				logf("client pod %s: %v", pod.Name, err)
			}
		}
	}, func(obj any) {
		if pod, ok := obj.(*corev1.Pod); ok {
			_ = s.Dynamic.Resource(execGVR).Namespace(namespace).Delete(context.WithoutCancel(ctx), pod.Name, metav1.DeleteOptions{})
		}
	})
}

func (s *Stack) attachClientPod(ctx context.Context, pod *corev1.Pod) error {
	var envs []any
	for _, c := range pod.Spec.Containers {
		for _, src := range c.EnvFrom {
			if src.SecretRef == nil {
				continue
			}
			sec, err := s.Clientset.CoreV1().Secrets(pod.Namespace).Get(ctx, src.SecretRef.Name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("envFrom Secret %s: %w", src.SecretRef.Name, err)
			}
			for k, v := range sec.Data {
				envs = append(envs, map[string]any{"name": src.Prefix + k, "value": string(v)})
			}
		}
	}
	ex := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Exec",
		"metadata": map[string]any{"name": pod.Name, "namespace": pod.Namespace},
		"spec":     map[string]any{"execs": []any{map[string]any{"local": map[string]any{"workDir": s.Dir, "envs": envs}}}},
	}}
	_, err := s.Dynamic.Resource(execGVR).Namespace(pod.Namespace).Create(ctx, ex, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// CreateJobDatabases plays the db-init hook Job against an external server:
// every database of its DATABASES env that pg lacks is created.
func (s *Stack) CreateJobDatabases(ctx context.Context, namespace, release string, pg *Postgres) error {
	job, err := s.Clientset.BatchV1().Jobs(namespace).Get(ctx, release+"-db-init", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("db-init job: %w", err)
	}
	var names []string
	for _, c := range job.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			if e.Name == "DATABASES" {
				names = strings.Fields(e.Value)
			}
		}
	}
	conn, err := pg.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, db := range names {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := conn.Exec(ctx, "CREATE DATABASE "+QuoteIdent(db)); err != nil {
				return fmt.Errorf("create database %s: %w", db, err)
			}
		}
	}
	return nil
}

// QuoteIdent quotes s as an SQL identifier.
func QuoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
