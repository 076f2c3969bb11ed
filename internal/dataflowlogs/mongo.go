package dataflowlogs

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/opencsgs/helm-csghub/internal/csghub"
	"github.com/opencsgs/helm-csghub/internal/kube"
	"github.com/opencsgs/helm-csghub/internal/steplog"
)

// MongoPort is the port of the chart's MongoDB.
const MongoPort = 27017

// Mongo is a client of the release's MongoDB through a port-forward.
type Mongo struct {
	Client *mongo.Client
	fw     *kube.Forward
}

// Close disconnects and ends the port-forward.
func (m *Mongo) Close(ctx context.Context) {
	_ = m.Client.Disconnect(ctx)
	m.fw.Close()
}

// ConnectMongo connects to `<release>-mongo-0` through a port-forward with the
// root credentials of Secret `<release>-mongo` (MONGO_INITDB_ROOT_USERNAME /
// MONGO_INITDB_ROOT_PASSWORD, authSource admin as the image creates them) and
// pings it, so an unreachable or refusing server fails here with one line.
func ConnectMongo(ctx context.Context, kc *kube.Client, namespace, release string) (*Mongo, error) {
	name := csghub.MongoStatefulSet(release)
	sec, err := kc.Clientset.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("secret %s/%s not found: the MongoDB credentials are needed to read the Dataflow logs", namespace, name)
	}
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s: %w", namespace, name, err)
	}
	user := string(sec.Data["MONGO_INITDB_ROOT_USERNAME"])
	if user == "" {
		return nil, fmt.Errorf("secret %s/%s has no MONGO_INITDB_ROOT_USERNAME", namespace, name)
	}
	pod := csghub.MongoPod(release)
	fw, err := kc.PortForward(ctx, namespace, pod, MongoPort)
	if err != nil {
		return nil, fmt.Errorf("MongoDB not reachable: %w", err)
	}
	opts := options.Client().
		ApplyURI("mongodb://" + fw.Addr() + "/").
		SetDirect(true). // one pod behind a forward: no replica-set discovery
		SetAuth(options.Credential{Username: user, Password: string(sec.Data["MONGO_INITDB_ROOT_PASSWORD"]), AuthSource: "admin"}).
		SetServerSelectionTimeout(15 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetAppName("helm-csghub")
	client, err := mongo.Connect(opts)
	if err != nil {
		fw.Close()
		return nil, fmt.Errorf("MongoDB %s/%s: %w", namespace, pod, err)
	}
	m := &Mongo{Client: client, fw: fw}
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := client.Ping(pctx, readpref.Primary()); err != nil {
		m.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("MongoDB %s/%s does not answer through a port-forward to port %s as %s: %s", namespace, pod,
			strconv.Itoa(MongoPort), user, mongoCause(err))
	}
	return m, nil
}

// mongoCause is the useful part of a driver error: a server selection
// timeout carries the last connection error inside a topology dump.
func mongoCause(err error) string {
	s := steplog.OneLine(err.Error())
	if _, after, ok := strings.Cut(s, "Last error: "); ok {
		if cause, _, ok := strings.Cut(after, " }"); ok {
			return cause
		}
		return after
	}
	return s
}
