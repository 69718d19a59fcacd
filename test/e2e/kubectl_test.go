//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// kubectl runs the real kubectl against the cluster of the current kubeconfig, as a
// user would, and returns its standard output; on failure the error carries its
// standard error too. Each command line is written to GinkgoWriter.
func kubectl(ctx context.Context, args ...string) (string, error) {
	fmt.Fprintf(GinkgoWriter, "$ kubectl %s\n", strings.Join(args, " "))
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, env.kubectl, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// dumpShopState records what a person debugging a failed spec looks at first: the
// objects of the Shop's namespace, the pods that are not ready described, every pod's
// last logs, and the namespace's events. It goes into the spec's report, which ginkgo
// prints when the spec failed.
func dumpShopState(ctx context.Context, namespace string) {
	var d dump
	d.kubectl(ctx, "get", "all,shop,pvc,secret,configmap,networkpolicy,pdb", "-o", "wide", "-n", namespace)
	d.kubectl(ctx, "describe", "shop", "-n", namespace)
	pods := &corev1.PodList{}
	if err := k8sClient.List(ctx, pods, client.InNamespace(namespace)); err != nil {
		fmt.Fprintf(&d, "list pods: %v\n", err)
	}
	for _, p := range pods.Items {
		if !podReady(&p) {
			d.kubectl(ctx, "describe", "pod", p.Name, "-n", namespace)
		}
		d.kubectl(ctx, "logs", p.Name, "-n", namespace, "--all-containers", "--tail=50")
		if restarted(&p) {
			d.kubectl(ctx, "logs", p.Name, "-n", namespace, "--all-containers", "--previous", "--tail=50")
		}
	}
	d.kubectl(ctx, "get", "events", "-n", namespace, "--sort-by=.lastTimestamp")
	AddReportEntry("state of namespace "+namespace, d.String(), ReportEntryVisibilityFailureOrVerbose)
}

// dumpOperatorState records the operator's objects and its manager's logs.
func dumpOperatorState(ctx context.Context) {
	var d dump
	d.kubectl(ctx, "get", "all", "-o", "wide", "-n", operatorNamespace)
	d.kubectl(ctx, "describe", "deployment", managerDeployment, "-n", operatorNamespace)
	d.kubectl(ctx, "logs", "deployment/"+managerDeployment, "-n", operatorNamespace, "--all-containers", "--tail=200")
	AddReportEntry("state of the operator", d.String(), ReportEntryVisibilityFailureOrVerbose)
}

// dump collects the output of kubectl commands, each under its command line.
type dump struct{ strings.Builder }

func (d *dump) kubectl(ctx context.Context, args ...string) {
	out, err := kubectl(ctx, args...)
	fmt.Fprintf(d, "$ kubectl %s\n%s", strings.Join(args, " "), out)
	if err != nil {
		fmt.Fprintf(d, "(%v)\n", err)
	}
	d.WriteString("\n")
}

// readyPodNames are the names of the Ready pods with the labels selector, sorted.
func readyPodNames(ctx context.Context, namespace string, selector map[string]string) ([]string, error) {
	pods := &corev1.PodList{}
	if err := k8sClient.List(ctx, pods, client.InNamespace(namespace), client.MatchingLabels(selector)); err != nil {
		return nil, err
	}
	var names []string
	for _, p := range pods.Items {
		if podReady(&p) {
			names = append(names, p.Name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// podReady says whether p serves: running, Ready, and not on its way out.
func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func restarted(p *corev1.Pod) bool {
	for _, c := range p.Status.ContainerStatuses {
		if c.RestartCount > 0 {
			return true
		}
	}
	return false
}
