package hubspot

import (
	"testing"

	"github.com/hookbridge/hookbridge/sinks/hubspot/hubspotfake"
)

// The fake HubSpot lives in hubspotfake so that end-to-end tests elsewhere can run hookbridge
// against it; these names keep the tests short.
type (
	fakeHubSpot = hubspotfake.Server
	fakeInput   = hubspotfake.Input
)

const fakeToken = hubspotfake.DefaultToken

func newFakeHubSpot(t testing.TB) *fakeHubSpot { return hubspotfake.New(t) }

func fakeProp(name, typ, fieldType string, options ...string) *hubspotfake.Property {
	return hubspotfake.Prop(name, typ, fieldType, options...)
}

// TestFakeSpeaksTheSinksHeaders: the fake and the sink name HubSpot's headers and batch
// limit alike, so the pacing tests test what the sink reads.
func TestFakeSpeaksTheSinksHeaders(t *testing.T) {
	for fake, sink := range map[string]string{hubspotfake.HeaderMax: headerMax, hubspotfake.HeaderRemaining: headerRemaining,
		hubspotfake.HeaderInterval: headerInterval, hubspotfake.HeaderDaily: headerDaily, hubspotfake.HeaderDailyRemaining: headerDailyRemaining} {
		if fake != sink {
			t.Errorf("fake sends %s, the sink reads %s", fake, sink)
		}
	}
	if hubspotfake.MaxInputs != MaxInputs {
		t.Errorf("fake takes %d inputs, the sink sends %d", hubspotfake.MaxInputs, MaxInputs)
	}
}
