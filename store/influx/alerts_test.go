package influx

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestAppendAlerts(t *testing.T) {
	at := time.Unix(1700000000, 5)
	b, n := appendAlerts(nil, []AlertEvent{{Time: at, State: "firing", Fingerprint: "00ff", Rule: "new-peer", Kind: "new_peer", Severity: "P4",
		Labels:  map[string]string{"vm": "web 1", "src": "web 1", "dst": "db-1", "team": "web", "alertname": "new-peer"},
		Summary: `new peer "web 1" → db-1`, Value: 490, Peak: 490, Threshold: "0", StartsAt: at}}, "c1")
	assert.Equal(t, 1, n)
	assert.Equal(t, `alert,fingerprint=00ff,host=-,instance=c1,kind=new_peer,rule=new-peer,severity=P4,state=firing,tenant=-,vm=web\ 1 `+
		`summary="new peer \"web 1\" → db-1",value=490,peak=490,threshold="0",src="web 1",dst="db-1",starts_at=1700000000i,labels="team=web" 1700000000000000005`+"\n", string(b))
}
