// Command s3world runs the local stand-in for AWS that `make demo` mounts: MinIO with the demo
// bucket and the IMDS/STS emulator with the roles of integration/testdata/world.json. It writes the
// endpoints (never a key) to -env once everything is ready, and stops it all on SIGINT/SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/s3mount/s3mount/integration/world"
)

func main() {
	dir := flag.String("dir", ".demo", "state directory (MinIO data, logs)")
	envFile := flag.String("env", "", "write the endpoints here as shell variables once ready")
	seed := flag.Bool("seed", true, "put a few demo files under team-a/")
	flag.Parse()
	// Every run starts from an empty MinIO: its root credentials are new each time.
	if err := os.RemoveAll(filepath.Join(*dir, "minio")); err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		log.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(*dir, "world.log"))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	w, err := world.Start(ctx, world.Options{Dir: *dir, Log: logf})
	if err != nil {
		log.Fatalf("s3world: %v (details in %s)", err, logf.Name())
	}
	defer w.Close()
	if *seed {
		for key, body := range demoFiles {
			if err := w.Put(ctx, key, strings.NewReader(body)); err != nil {
				w.Close()
				log.Fatalf("s3world: seeding %s: %v", key, err)
			}
		}
	}
	cancel()
	if *envFile != "" {
		env := fmt.Sprintf("S3_ENDPOINT=%s\nIMDS_ENDPOINT=%s\nSTS_ENDPOINT=%s\n", w.MinIO.Endpoint, w.Emu.IMDSEndpoint(), w.Emu.STSEndpoint())
		tmp := *envFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(env), 0o600); err != nil || os.Rename(tmp, *envFile) != nil {
			w.Close()
			log.Fatalf("s3world: writing %s: %v", *envFile, err)
		}
	}
	log.Printf("s3world: MinIO at %s, IMDS at %s, STS at %s", w.MinIO.Endpoint, w.Emu.IMDSEndpoint(), w.Emu.STSEndpoint())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	<-sigs
	log.Printf("s3world: stopping")
}

var demoFiles = map[string]string{
	"team-a/README.txt":              "Hello from s3://demo-bucket/team-a, mounted without a single access key.\n",
	"team-a/reports/2026-q3.csv":     "region,revenue\nnorth,120\nsouth,95\n",
	"team-a/reports/2026-q4.csv":     "region,revenue\nnorth,131\nsouth,102\n",
	"team-a/logs/app/2026-11-24.log": "12:00:01 started\n12:00:02 ready\n",
	"team-b/not-for-team-a.txt":      "the team-a role may not read this\n",
}
