// cri-sweep stops and removes every pod sandbox a CRI runtime knows, so that the runtime
// tears down each pod's network (CNI DEL: veth, IPAM lease, hostport rules) before it is
// stopped. crictl would do this (`crictl rmp -af`) but its module is not served here, so
// this is the smallest client of the same API, built from the Kubernetes module graph.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	endpoint := flag.String("endpoint", "", "path of the CRI runtime's unix socket")
	timeout := flag.Duration("timeout", 90*time.Second, "deadline for the whole sweep")
	flag.Parse()
	if *endpoint == "" {
		fmt.Fprintln(os.Stderr, "cri-sweep: -endpoint is required")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	conn, err := grpc.NewClient("unix://"+*endpoint,
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintf(os.Stderr, "cri-sweep: connect %s: %v\n", *endpoint, err)
		os.Exit(1)
	}
	defer conn.Close()
	client := runtimeapi.NewRuntimeServiceClient(conn)

	list, err := client.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "cri-sweep: list sandboxes: %v\n", err)
		os.Exit(1)
	}
	failed := 0
	for _, sandbox := range list.Items {
		name := sandbox.Metadata.Namespace + "/" + sandbox.Metadata.Name
		if _, err := client.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sandbox.Id}); err != nil {
			fmt.Fprintf(os.Stderr, "cri-sweep: stop %s: %v\n", name, err)
			failed++
			continue
		}
		if _, err := client.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sandbox.Id}); err != nil {
			fmt.Fprintf(os.Stderr, "cri-sweep: remove %s: %v\n", name, err)
			failed++
			continue
		}
		fmt.Printf("removed sandbox %s %s\n", sandbox.Id[:12], name)
	}
	if failed > 0 {
		os.Exit(1)
	}
}
