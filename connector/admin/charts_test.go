package admin

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

// The analyst's range: Feb 20 to Mar 4 2030 (13 days), with changes on Mar 1 to 4 only, and a
// campaign from Feb 25 to Mar 2.
var sparsePoints = []dayPoint{
	{day("2030-03-01"), 3, 1, 2},
	{day("2030-03-02"), 4, 0, 4},
	{day("2030-03-03"), 1, 0, 1},
	{day("2030-03-04"), 4, 1, 3},
}

// lineX is where lineChartSVG puts day i of a range of n days.
func lineX(i, n int) float64 { return 48 + (float64(i)+0.5)*float64(760-48-12)/float64(n) }

func parseF(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func near(a, b float64) bool { return a-b < 0.11 && b-a < 0.11 }

// TestLineChartSpansEveryDayOfTheRange: the x axis runs over every day asked for, days
// without rows are drawn at zero, and points and the campaign window are placed by date.
func TestLineChartSpansEveryDayOfTheRange(t *testing.T) {
	svg := string(lineChartSVG(sparsePoints, day("2030-02-20"), day("2030-03-04"), day("2030-02-25"), day("2030-03-02"), "test"))
	const n = 13
	circles := regexp.MustCompile(`<circle class="s-net" cx="([-\d.]+)" cy="([-\d.]+)" r="2.5"><title>(\S+) net: (-?\d+)</title>`).FindAllStringSubmatch(svg, -1)
	if len(circles) != len(sparsePoints) {
		t.Fatalf("%d net dots, want one per day with changes (%d):\n%s", len(circles), len(sparsePoints), svg)
	}
	for i, c := range circles {
		want := lineX(9+i, n) // Mar 1 is day 9 from Feb 20
		if got := parseF(t, c[1]); !near(got, want) {
			t.Errorf("%s is drawn at x=%.1f, want %.1f (placed by its date)", c[3], got, want)
		}
	}
	// The net line starts on Feb 20 at zero and stays there until Feb 28.
	zeroY := regexp.MustCompile(`<line x1="\d+" x2="\d+" y1="([-\d.]+)"[^>]*class="zero"`).FindStringSubmatch(svg)
	if zeroY == nil {
		t.Fatalf("no zero line:\n%s", svg)
	}
	y0 := zeroY[1]
	net := regexp.MustCompile(`<polyline class="s-net" points="([^"]+)"`).FindStringSubmatch(svg)
	if net == nil {
		t.Fatalf("no net line:\n%s", svg)
	}
	pts := strings.Fields(net[1])
	if want := []string{fmt.Sprintf("%.1f,%s", lineX(0, n), y0), fmt.Sprintf("%.1f,%s", lineX(8, n), y0)}; len(pts) < 2 || pts[0] != want[0] || pts[1] != want[1] {
		t.Errorf("the net line starts %q, want %q (Feb 20 to 28 at zero)", pts, want)
	}
	if !strings.Contains(svg, ">Feb 20<") {
		t.Errorf("the x axis does not start on Feb 20:\n%s", svg)
	}
	// The campaign window covers Feb 25 to Mar 2: days 5 to 10.
	rect := regexp.MustCompile(`<rect class="campaign" x="([-\d.]+)" y="\d+" width="([-\d.]+)"`).FindStringSubmatch(svg)
	if rect == nil {
		t.Fatalf("no campaign window:\n%s", svg)
	}
	slot := lineX(1, n) - lineX(0, n)
	if x, w := parseF(t, rect[1]), parseF(t, rect[2]); !near(x, lineX(5, n)-slot/2) || !near(w, 6*slot) {
		t.Errorf("campaign window at x=%.1f width %.1f, want x=%.1f width %.1f", x, w, lineX(5, n)-slot/2, 6*slot)
	}
}

// A campaign window reaching outside the range is shaded over its days within it only, and
// one entirely outside is not shaded.
func TestLineChartClipsTheCampaignWindow(t *testing.T) {
	svg := string(lineChartSVG(sparsePoints, day("2030-02-20"), day("2030-03-04"), day("2030-02-01"), day("2030-02-21"), "test"))
	rect := regexp.MustCompile(`<rect class="campaign" x="([-\d.]+)" y="\d+" width="([-\d.]+)"`).FindStringSubmatch(svg)
	slot := lineX(1, 13) - lineX(0, 13)
	if rect == nil || !near(parseF(t, rect[1]), 48) || !near(parseF(t, rect[2]), 2*slot) {
		t.Errorf("campaign window %q, want x=48 over 2 days", rect)
	}
	svg = string(lineChartSVG(sparsePoints, day("2030-02-20"), day("2030-03-04"), day("2030-04-01"), day("2030-04-02"), "test"))
	if strings.Contains(svg, `class="campaign"`) {
		t.Errorf("a campaign window after the range is shaded:\n%s", svg)
	}
}

// TestLineChartStaysLightForLongRanges: ten years with a few active days is a few points per
// line, without a dot per day.
func TestLineChartStaysLightForLongRanges(t *testing.T) {
	svg := string(lineChartSVG(sparsePoints, day("2021-01-01"), day("2030-12-31"), time.Time{}, time.Time{}, "test"))
	if len(svg) > 4000 {
		t.Errorf("a ten-year chart with four active days takes %d bytes", len(svg))
	}
	if strings.Contains(svg, "<circle") {
		t.Error("a ten-year chart draws dots")
	}
	for _, m := range regexp.MustCompile(`<polyline class="[^"]+" points="([^"]+)"`).FindAllStringSubmatch(svg, -1) {
		if n := len(strings.Fields(m[1])); n > 2*len(sparsePoints)+2 {
			t.Errorf("a line of %d points for four active days", n)
		}
	}
	// Its last active day is still placed by date.
	n := daysBetween(day("2021-01-01"), day("2030-12-31")) + 1
	i := daysBetween(day("2021-01-01"), day("2030-03-04"))
	if want := fmt.Sprintf("%.1f,", lineX(i, n)); !strings.Contains(svg, want) {
		t.Errorf("no point at x=%s for 2030-03-04", want)
	}
}

// TestCampaignAveragesCountEveryDay: the averages divide by the days of each period, not by
// the days that had changes.
func TestCampaignAveragesCountEveryDay(t *testing.T) {
	for _, tc := range []struct {
		cfrom, cto string
		want       campaign
	}{
		// Net 6 over Feb 25 to Mar 2 (6 days), 4 over the other 7 days.
		{"2030-02-25", "2030-03-02", campaign{"1.00", "0.57", 6, 7}},
		{"2030-03-02", "2030-02-25", campaign{"1.00", "0.57", 6, 7}}, // given backwards
		// Clipped to the range: Feb 20 to 21.
		{"2030-02-01", "2030-02-21", campaign{"0.00", "0.91", 2, 11}},
		{"2030-04-01", "2030-04-30", campaign{"-", "0.77", 0, 13}},
		// The whole range.
		{"2030-01-01", "2030-12-31", campaign{"0.77", "-", 13, 0}},
	} {
		got := campaignAverages(sparsePoints, day("2030-02-20"), day("2030-03-04"), day(tc.cfrom), day(tc.cto))
		if got != tc.want {
			t.Errorf("campaign %s to %s: %+v, want %+v", tc.cfrom, tc.cto, got, tc.want)
		}
	}
}

// TestDefaultLastDay: the default window ends at the latest change, or today if that is later.
func TestDefaultLastDay(t *testing.T) {
	now := time.Date(2030, 3, 4, 23, 30, 0, 0, time.FixedZone("west", -5*3600)) // Mar 5 04:30 UTC
	for latest, want := range map[time.Time]string{
		{}:                "2030-03-05",
		day("2999-01-01"): "2030-03-05",
		day("2030-03-06"): "2030-03-05",
		day("2030-03-05"): "2030-03-05",
		day("2030-02-01"): "2030-02-01",
	} {
		if got := defaultLastDay(latest, now).Format(time.DateOnly); got != want {
			t.Errorf("latest change %v: last day %s, want %s", latest, got, want)
		}
	}
}
