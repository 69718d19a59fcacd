// Command provisioner gives the local cluster (hack/local-cluster.sh) dynamic volumes: for
// each pending PersistentVolumeClaim of its StorageClass it makes a folder on the node and
// a hostPath PersistentVolume bound to the claim, and it removes both once the claim is
// deleted. kind ships rancher's local-path-provisioner for this; no image of it can be
// pulled here, and a single node needs no more than these few lines.
//
// The folders are world-writable: hostPath volumes ignore a pod's fsGroup, and the stores
// run as non-root users.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// provisionedBy marks the volumes this program made, the only ones it deletes.
const provisionedBy = "pv.kubernetes.io/provisioned-by"

type provisioner struct {
	client kubernetes.Interface
	class  string // StorageClass whose claims this program serves (its provisioner field)
	dir    string // parent folder of the volumes' folders
	log    *slog.Logger
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster")
	dir := flag.String("dir", "", "folder under which the volumes' folders are made")
	class := flag.String("class", "local-path", "StorageClass whose claims are provisioned")
	interval := flag.Duration("interval", 2*time.Second, "how often claims and volumes are checked")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *kubeconfig == "" || *dir == "" {
		log.Error("-kubeconfig and -dir are required")
		os.Exit(2)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Error("kubeconfig", "err", err)
		os.Exit(1)
	}
	p := &provisioner{client: kubernetes.NewForConfigOrDie(cfg), class: *class, dir: *dir, log: log}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Polling keeps this small; a claim waits at most one interval.
	t := time.NewTicker(*interval)
	defer t.Stop()
	for {
		if err := p.sync(ctx); err != nil && ctx.Err() == nil {
			log.Error("sync", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sync provisions every pending claim of the class and deletes every released volume.
func (p *provisioner) sync(ctx context.Context) error {
	claims, err := p.client.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for i := range claims.Items {
		c := &claims.Items[i]
		if c.Status.Phase == corev1.ClaimPending && c.Spec.VolumeName == "" &&
			c.Spec.StorageClassName != nil && *c.Spec.StorageClassName == p.class {
			if err := p.provision(ctx, c); err != nil {
				return fmt.Errorf("claim %s/%s: %w", c.Namespace, c.Name, err)
			}
		}
	}
	volumes, err := p.client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for i := range volumes.Items {
		v := &volumes.Items[i]
		if v.Annotations[provisionedBy] == p.class &&
			(v.Status.Phase == corev1.VolumeReleased || v.Status.Phase == corev1.VolumeFailed) {
			if err := p.remove(ctx, v); err != nil {
				return fmt.Errorf("volume %s: %w", v.Name, err)
			}
		}
	}
	return nil
}

func (p *provisioner) provision(ctx context.Context, c *corev1.PersistentVolumeClaim) error {
	name := "pvc-" + string(c.UID)
	path := filepath.Join(p.dir, name)
	if err := os.MkdirAll(path, 0o777); err != nil {
		return err
	}
	if err := os.Chmod(path, 0o777); err != nil { // MkdirAll's mode passes through the umask
		return err
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{provisionedBy: p.class}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: c.Spec.Resources.Requests[corev1.ResourceStorage]},
			AccessModes:                   c.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              p.class,
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: c.Namespace, Name: c.Name, UID: c.UID,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: path, Type: ptr.To(corev1.HostPathDirectory),
			}},
		},
	}
	_, err := p.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err == nil {
		p.log.Info("provisioned", "claim", c.Namespace+"/"+c.Name, "volume", name)
	}
	return err
}

func (p *provisioner) remove(ctx context.Context, v *corev1.PersistentVolume) error {
	if v.Spec.HostPath != nil && filepath.Dir(v.Spec.HostPath.Path) == filepath.Clean(p.dir) {
		if err := os.RemoveAll(v.Spec.HostPath.Path); err != nil {
			return err
		}
	}
	err := p.client.CoreV1().PersistentVolumes().Delete(ctx, v.Name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil {
		p.log.Info("deleted", "volume", v.Name)
	}
	return err
}
