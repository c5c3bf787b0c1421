package admin

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"
)

// The dashboard's charts are drawn on the server as inline SVG: no script, no external
// library, readable by screen readers through their <title> elements and the tables beside
// them.

// heatmapCell is one weekday × hour count.
type heatmapCell struct {
	Weekday int // ISO: 1 = Monday
	Hour    int
	Count   int64
}

var weekdayNames = []string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}

// heatmapSVG draws subscribes by weekday (rows) and hour (columns).
func heatmapSVG(cells []heatmapCell, title string) template.HTML {
	const cw, ch, left, top = 26, 22, 44, 24
	var maxCount int64
	grid := map[[2]int]int64{}
	for _, c := range cells {
		grid[[2]int{c.Weekday, c.Hour}] = c.Count
		maxCount = max(maxCount, c.Count)
	}
	var b strings.Builder
	w, h := left+24*cw+10, top+7*ch+10
	fmt.Fprintf(&b, `<svg class="chart heatmap" role="img" viewBox="0 0 %d %d" width="%d" height="%d" aria-label="%s"><title>%s</title>`, w, h, w, h, template.HTMLEscapeString(title), template.HTMLEscapeString(title))
	for hr := 0; hr < 24; hr += 3 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="axis">%02d</text>`, left+hr*cw+4, top-8, hr)
	}
	for d := 1; d <= 7; d++ {
		y := top + (d-1)*ch
		fmt.Fprintf(&b, `<text x="4" y="%d" class="axis">%s</text>`, y+15, weekdayNames[d-1])
		for hr := 0; hr < 24; hr++ {
			n := grid[[2]int{d, hr}]
			shade := 0.0
			if maxCount > 0 {
				shade = float64(n) / float64(maxCount)
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="rgba(37,99,235,%.3f)" stroke="#e5e7eb"><title>%s %02d:00: %d subscribes</title></rect>`,
				left+hr*cw, y, cw-1, ch-1, 0.06+0.94*shade, weekdayNames[d-1], hr, n)
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// dayPoint is one day of the campaign chart.
type dayPoint struct {
	Day          time.Time
	Subscribes   int64
	Unsubscribes int64
	Net          int64
}

// maxDotDays is the longest range whose line chart marks each day with activity by a dot
// carrying its figures. Longer ranges draw the lines alone, a few points per day with
// activity whatever the range's length, so the page stays light.
const maxDotDays = 200

// lineChartSVG draws daily subscribes, unsubscribes and net over every day from first to last
// (UTC dates), with the campaign window [cfrom, cto] shaded where it falls in that range.
// points are the days with activity, in order: the others are drawn as zero. Each day is a
// slot of equal width and points are placed by their date.
func lineChartSVG(points []dayPoint, first, last, cfrom, cto time.Time, title string) template.HTML {
	const w, h, left, right, top, bottom = 760, 260, 48, 12, 16, 36
	first, last = utcDate(first), utcDate(last)
	days := daysBetween(first, last) + 1
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart line" role="img" viewBox="0 0 %d %d" width="%d" height="%d" aria-label="%s"><title>%s</title>`, w, h, w, h, template.HTMLEscapeString(title), template.HTMLEscapeString(title))
	if days < 1 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="axis">no days in this range</text></svg>`, left, h/2)
		return template.HTML(b.String())
	}
	// The days with activity within the range, by their index from first.
	type dayAt struct {
		i int
		p dayPoint
	}
	var active []dayAt
	for _, p := range points {
		if i := daysBetween(first, utcDate(p.Day)); i >= 0 && i < days && (len(active) == 0 || i > active[len(active)-1].i) {
			active = append(active, dayAt{i, p})
		}
	}
	lo, hi := int64(0), int64(1)
	for _, a := range active {
		lo = min(lo, a.p.Net, -a.p.Unsubscribes)
		hi = max(hi, a.p.Subscribes, a.p.Net)
	}
	span := float64(hi - lo)
	slot := float64(w-left-right) / float64(days)
	x := func(i int) float64 { return left + (float64(i)+0.5)*slot }
	y := func(v int64) float64 { return top + (float64(hi-v)/span)*float64(h-top-bottom) }
	// Campaign window, clipped to the range.
	if !cfrom.IsZero() && !cto.IsZero() {
		a, z := max(daysBetween(first, utcDate(cfrom)), 0), min(daysBetween(first, utcDate(cto)), days-1)
		if a <= z {
			fmt.Fprintf(&b, `<rect class="campaign" x="%.1f" y="%d" width="%.1f" height="%d"><title>campaign window %s to %s</title></rect>`,
				x(a)-slot/2, top, float64(z-a+1)*slot, h-top-bottom, cfrom.Format(time.DateOnly), cto.Format(time.DateOnly))
		}
	}
	// Axes: zero line, value ticks and about eight dates.
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" class="zero"/>`, left, w-right, y(0), y(0))
	for _, v := range niceTicks(lo, hi) {
		fmt.Fprintf(&b, `<text x="4" y="%.1f" class="axis">%d</text>`, y(v)+4, v)
	}
	layout := "Jan 2"
	if first.Year() != last.Year() {
		layout = "Jan 2, 2006"
	}
	step := (days + 7) / 8
	for i := 0; i < days; i += step {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="axis" text-anchor="middle">%s</text>`, x(i), h-12, first.AddDate(0, 0, i).Format(layout))
	}
	if len(active) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="axis">no subscribes or unsubscribes in this range</text>`, left+8, top+14)
	}
	series := []struct {
		name, class string
		val         func(dayPoint) int64
	}{
		{"subscribes", "s-sub", func(p dayPoint) int64 { return p.Subscribes }},
		{"unsubscribes", "s-unsub", func(p dayPoint) int64 { return p.Unsubscribes }},
		{"net", "s-net", func(p dayPoint) int64 { return p.Net }},
	}
	for _, s := range series {
		var pts []string
		at := func(i int, v int64) { pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v))) }
		// A run of days without activity is a flat line at zero: its first and last day.
		zeros := func(i, j int) {
			if i <= j {
				at(i, 0)
			}
			if i < j {
				at(j, 0)
			}
		}
		next := 0
		for _, a := range active {
			zeros(next, a.i-1)
			at(a.i, s.val(a.p))
			next = a.i + 1
		}
		zeros(next, days-1)
		fmt.Fprintf(&b, `<polyline class="%s" points="%s"><title>%s</title></polyline>`, s.class, strings.Join(pts, " "), s.name)
		if days <= maxDotDays {
			for _, a := range active {
				fmt.Fprintf(&b, `<circle class="%s" cx="%.1f" cy="%.1f" r="2.5"><title>%s %s: %d</title></circle>`, s.class, x(a.i), y(s.val(a.p)), a.p.Day.Format(time.DateOnly), s.name, s.val(a.p))
			}
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// utcDate is t's date as midnight UTC.
func utcDate(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// daysBetween is the number of days from the UTC date a to the UTC date b (negative when b
// is earlier). It goes by Unix seconds, so ranges longer than a Duration holds count too.
func daysBetween(a, b time.Time) int {
	return int((b.Unix() - a.Unix()) / 86400)
}

func niceTicks(lo, hi int64) []int64 {
	span := float64(hi - lo)
	step := math.Pow(10, math.Floor(math.Log10(max(span/4, 1))))
	for span/step > 6 {
		step *= 2
	}
	var out []int64
	for v := math.Ceil(float64(lo)/step) * step; v <= float64(hi); v += step {
		out = append(out, int64(v))
	}
	return out
}

// bar is one labelled value of a bar chart.
type bar struct {
	Label string
	Value int64
	Group string
}

// barsSVG draws horizontal bars (tag popularity by postcode).
func barsSVG(bars []bar, title string) template.HTML {
	const rowH, left, w = 20, 220, 760
	h := 8 + len(bars)*rowH
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart bars" role="img" viewBox="0 0 %d %d" width="%d" height="%d" aria-label="%s"><title>%s</title>`, w, max(h, 30), w, max(h, 30), template.HTMLEscapeString(title), template.HTMLEscapeString(title))
	var maxV int64 = 1
	for _, br := range bars {
		maxV = max(maxV, br.Value)
	}
	for i, br := range bars {
		y := 4 + i*rowH
		width := float64(br.Value) / float64(maxV) * float64(w-left-60)
		label := br.Label
		if br.Group != "" {
			label = br.Group + " · " + label
		}
		fmt.Fprintf(&b, `<text x="4" y="%d" class="axis">%s</text><rect x="%d" y="%d" width="%.1f" height="%d" class="bar"><title>%s: %d</title></rect><text x="%.1f" y="%d" class="axis">%d</text>`,
			y+14, template.HTMLEscapeString(truncate(label, 34)), left, y+2, width, rowH-6, template.HTMLEscapeString(label), br.Value, float64(left)+width+6, y+14, br.Value)
	}
	if len(bars) == 0 {
		b.WriteString(`<text x="4" y="20" class="axis">no active subscriptions with tags and postcodes yet</text>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// sparkline draws events per minute for the overview.
func sparklineSVG(counts []int64, title string) template.HTML {
	const w, h = 760, 90
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart spark" role="img" viewBox="0 0 %d %d" width="%d" height="%d" aria-label="%s"><title>%s</title>`, w, h, w, h, template.HTMLEscapeString(title), template.HTMLEscapeString(title))
	var maxV int64 = 1
	for _, c := range counts {
		maxV = max(maxV, c)
	}
	bw := float64(w) / float64(max(len(counts), 1))
	for i, c := range counts {
		bh := float64(c) / float64(maxV) * float64(h-14)
		fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%d min ago: %d events</title></rect>`, float64(i)*bw, float64(h)-bh, max(bw-1, 1), bh, len(counts)-i, c)
	}
	fmt.Fprintf(&b, `<text x="4" y="12" class="axis">max %d/min</text></svg>`, maxV)
	return template.HTML(b.String())
}

func truncate(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
