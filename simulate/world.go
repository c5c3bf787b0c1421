package simulate

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// accountSeeds are the merchants of the simulated world: sports, music and a school, in the
// three postcode systems hookbridge meets (AU, GB, US).
var accountSeeds = []struct {
	name, code, country, tz, venue string
	calendars                      []string
}{
	{"Southern Cross Footy League", "southern-cross-footy", "AU", "Australia/Melbourne", "Yarra Park Oval, Richmond VIC 3002",
		[]string{"SCFL 2025 Fixtures", "SCFL Women's 2025", "SCFL Finals Series"}},
	{"Thames Valley Rugby Club", "thames-valley-rugby", "GB", "Europe/London", "Kassam Fields, Oxford OX4 4XP",
		[]string{"TVRC Home Fixtures 2025/26", "TVRC Academy", "TVRC Social Events"}},
	{"Lone Star Live Events", "lone-star-live", "US", "America/Chicago", "Deep Ellum Hall, 2700 Canton St, Dallas, TX 75226",
		[]string{"Lone Star Live Concerts", "Texas Comedy Nights", "Summer Festival 2026", "Family Matinees"}},
	{"Harbour City Netball", "harbour-city-netball", "AU", "Australia/Sydney", "Quaycentre, Sydney Olympic Park NSW 2127",
		[]string{"HCN Season 2025", "HCN Junior Carnival"}},
}

var firstNames = []string{"Charlotte", "Olivia", "Amelia", "Isla", "Mia", "Ava", "Grace", "Chloe", "Zoe", "Ruby", "Lucy", "Emily",
	"Jack", "Oliver", "Noah", "William", "Thomas", "James", "Liam", "Henry", "Lucas", "Ethan", "Mason", "Leo",
	"Sofia", "Mateo", "Aaliyah", "Priya", "Wei", "Hiroshi", "Fatima", "Omar", "Siobhan", "Tomás", "Zoë", "Ngaio"}

var lastNames = []string{"Smith", "Nguyen", "Jones", "Williams", "Brown", "Taylor", "Wilson", "Martin", "Anderson", "Thompson",
	"O'Brien", "Patel", "Garcia", "Rodriguez", "Chen", "Kim", "Singh", "Murphy", "Kelly", "Walker", "Hall", "Young",
	"MacDonald", "van der Berg", "Okafor", "Rossi", "Cohen", "Ahmed"}

var domains = []string{"example.com", "example.org", "example.net", "mail.example.com", "example.co.uk", "example.com.au"}

// world builds the accounts, calendars, tags, subscriber pool and campaigns.
func (g *Generator) world() {
	for _, as := range accountSeeds {
		a := &account{id: g.uuid(), name: as.name, code: as.code, country: as.country}
		tags := make([]string, 4+g.rng.IntN(4))
		for i := range tags {
			tags[i] = g.uuid()
		}
		for _, title := range as.calendars {
			c := &calendar{acc: a, id: g.uuid(), title: title, code: slug(title), venue: as.venue, venueTZ: as.tz,
				popularity: 0.3 + g.rng.Float64()*2}
			for _, t := range tags {
				if g.rng.IntN(2) == 0 || len(c.tags) == 0 {
					c.tags = append(c.tags, t)
				}
			}
			a.calendars = append(a.calendars, c)
			g.calendars = append(g.calendars, c)
		}
		g.accounts = append(g.accounts, a)
	}
	g.people = make([]*person, g.o.Subscribers)
	for i := range g.people {
		g.people[i] = g.person(i)
	}
	days := int(g.o.Span / (24 * time.Hour))
	for i := 0; i < g.o.Campaigns && days > 3; i++ {
		from := g.o.Start.Add(time.Duration(1+g.rng.IntN(days-3)) * 24 * time.Hour).Truncate(24 * time.Hour).Add(time.Duration(g.rng.IntN(12)) * time.Hour)
		g.campaigns = append(g.campaigns, Campaign{Calendar: g.calendars[g.rng.IntN(len(g.calendars))].code, From: from, To: from.Add(time.Duration(24+g.rng.IntN(48)) * time.Hour)})
	}
	sort.Slice(g.campaigns, func(i, j int) bool { return g.campaigns[i].From.Before(g.campaigns[j].From) })
}

func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// person makes subscriber i: a name, an email spelt the ways people spell them (some with
// plus-addressing, some in capitals), and a postcode of the country of one of the accounts.
func (g *Generator) person(i int) *person {
	p := &person{first: firstNames[g.rng.IntN(len(firstNames))], last: lastNames[g.rng.IntN(len(lastNames))], consent: g.rng.IntN(10) < 4}
	local := strings.ToLower(asciiName(p.first) + "." + strings.ReplaceAll(asciiName(p.last), " ", ""))
	local = fmt.Sprintf("%s%d", local, i)
	switch n := g.rng.IntN(100); {
	case n < 6:
		local += "+calendar"
	case n < 9:
		local += "+" + accountSeeds[g.rng.IntN(len(accountSeeds))].code
	}
	email := local + "@" + domains[g.rng.IntN(len(domains))]
	switch n := g.rng.IntN(100); {
	case n < 4:
		email = strings.ToUpper(email)
	case n < 10:
		email = strings.ToUpper(email[:1]) + email[1:]
	case n < 12:
		email = " " + email + " "
	}
	p.email = email
	p.emailKey = strings.ToLower(strings.TrimSpace(email))
	switch g.rng.IntN(3) {
	case 0: // AU: four digits
		p.country = "AU"
		p.postcode = fmt.Sprintf("%04d", []int{3000, 3121, 3181, 2000, 2127, 2150, 4000, 5000, 6000, 7000}[g.rng.IntN(10)]+g.rng.IntN(3))
	case 1: // GB: outward and inward codes, spelt loosely sometimes
		p.country = "GB"
		out := []string{"SW1A", "OX4", "RG1", "M1", "EC1A", "B33", "CR2", "LS1", "W1A"}[g.rng.IntN(9)]
		in := fmt.Sprintf("%d%c%c", g.rng.IntN(10), 'A'+rune(g.rng.IntN(26)), 'A'+rune(g.rng.IntN(26)))
		switch g.rng.IntN(5) {
		case 0:
			p.postcode = strings.ToLower(out + in)
		case 1:
			p.postcode = out + "  " + in
		default:
			p.postcode = out + " " + in
		}
	default: // US: ZIP or ZIP+4
		p.country = "US"
		p.postcode = fmt.Sprintf("%05d", []int{75226, 10001, 90210, 60601, 73301, 94103, 30301, 2108}[g.rng.IntN(8)])
		if g.rng.IntN(5) == 0 {
			p.postcode += fmt.Sprintf("-%04d", g.rng.IntN(10000))
		}
	}
	if g.rng.IntN(3) == 0 { // a mobile number of the person's country
		a, b, c := g.rng.IntN(100), g.rng.IntN(1000), g.rng.IntN(1000)
		switch p.country {
		case "AU":
			p.phone = fmt.Sprintf("+61 4%02d %03d %03d", a, b, c)
		case "GB":
			p.phone = fmt.Sprintf("+44 7%02d%d %03d%03d", a, b/100, b, c)
		default:
			p.phone = fmt.Sprintf("+1 (%03d) %03d-%04d", 200+a, b, c*10)
		}
	}
	return p
}

func asciiName(s string) string {
	r := strings.NewReplacer("á", "a", "ë", "e", "é", "e", "'", "")
	return r.Replace(s)
}
