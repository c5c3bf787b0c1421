package mailchimp

import (
	"testing"

	"github.com/hookbridge/hookbridge/sinks/mailchimp/mailchimpfake"
)

// The fake Mailchimp lives in mailchimpfake so that end-to-end tests elsewhere can run
// hookbridge against it; these names keep the tests short.
type fakeMailchimp = mailchimpfake.Server

func newFakeMailchimp(t testing.TB) *fakeMailchimp { return mailchimpfake.New(t) }

// TestFakeSpeaksTheSinksLimits: the fake and the sink agree on Mailchimp's limits and on
// the subscriber hash, so the tests test what the sink sends.
func TestFakeSpeaksTheSinksLimits(t *testing.T) {
	if mailchimpfake.MaxMembers != MaxMembers || mailchimpfake.MaxConnections != MaxConnections {
		t.Errorf("fake: %d members, %d connections; sink: %d, %d", mailchimpfake.MaxMembers, mailchimpfake.MaxConnections, MaxMembers, MaxConnections)
	}
	for _, e := range []string{"Jane@Example.com", " a@b.co "} {
		if mailchimpfake.Hash(e) != subscriberHash(e) {
			t.Errorf("%q: fake hash %s, sink hash %s", e, mailchimpfake.Hash(e), subscriberHash(e))
		}
	}
	if !transient(mailchimpfake.TransientCode) {
		t.Errorf("the fake's transient member error %s is not transient to the sink", mailchimpfake.TransientCode)
	}
}
