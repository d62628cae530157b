// Command kstatus-check computes the kstatus status (the library Flux, kpt and `kubectl wait`-style
// tooling use) of Kubernetes objects given as JSON files, so that the project can verify how
// SafeDeployment statuses captured from a real cluster read to those tools.
//
// Usage: kstatus-check FILE... ; prints one line per file: "<file>\t<status>\t<message>".
package main

import (
	"fmt"
	"os"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kstatus-check FILE...")
		os.Exit(2)
	}
	failed := false
	for _, path := range os.Args[1:] {
		data, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			failed = true
			continue
		}
		// UnmarshalJSON keeps integers as int64, as the API machinery does (plain encoding/json
		// would make metadata.generation a float64, which kstatus rejects).
		object := &unstructured.Unstructured{}
		if err := object.UnmarshalJSON(data); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			failed = true
			continue
		}
		result, err := status.Compute(object)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			failed = true
			continue
		}
		fmt.Printf("%s\t%s\t%s\n", path, result.Status, result.Message)
	}
	if failed {
		os.Exit(1)
	}
}
