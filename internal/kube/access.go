package kube

import (
	"context"

	authv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CanI asks the API server (SelfSubjectAccessReview) whether the current user
// may perform verb on resource/subresource in namespace ("" for cluster scope).
func (c *Client) CanI(ctx context.Context, namespace, verb, resource, subresource, name string) (bool, error) {
	return c.CanIGroup(ctx, namespace, verb, "", resource, subresource, name)
}

// CanIGroup is CanI for a resource of an API group.
func (c *Client) CanIGroup(ctx context.Context, namespace, verb, group, resource, subresource, name string) (bool, error) {
	r, err := c.Clientset.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authv1.SelfSubjectAccessReview{
		Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{
			Namespace: namespace, Verb: verb, Group: group, Resource: resource, Subresource: subresource, Name: name,
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return r.Status.Allowed, nil
}
