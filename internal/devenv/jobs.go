package devenv

import (
	"context"
	"fmt"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WaitJobsFinished waits until every Job in namespace is Complete or Failed:
// the charts' init Jobs are ordinary resources (as in the real chart) that
// kwok completes and kube-controller-manager's Job controller finishes within
// seconds; an upgrade or rollback started while one still runs is refused.
func (s *Stack) WaitJobsFinished(ctx context.Context, namespace string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		jobs, err := s.Clientset.BatchV1().Jobs(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		var running []string
		for _, j := range jobs.Items {
			if !jobFinished(&j) {
				running = append(running, j.Name)
			}
		}
		if len(running) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("Jobs still running in %s after %s: %s", namespace, timeout, strings.Join(running, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func jobFinished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}
