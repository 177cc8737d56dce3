package main

import (
	"image/color"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// One colour per column, in column order (s3mount first).
var palette = []color.RGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {152, 223, 138, 255}, {200, 200, 200, 255},
	{110, 110, 110, 255},
}

// chart draws the rows of one chart kind as panels (one per unit), stacked vertically: a group of
// bars per row, a bar per column, each labelled with its median, or FAIL / n/a.
func (r *results) chart(path, kind, title string) error {
	var panels []string
	byPanel := map[string][]row{}
	for _, rw := range r.Rows {
		if rw.Chart != kind {
			continue
		}
		if byPanel[rw.Panel] == nil {
			panels = append(panels, rw.Panel)
		}
		byPanel[rw.Panel] = append(byPanel[rw.Panel], rw)
	}
	if len(panels) == 0 {
		return nil
	}
	plots := make([][]*plot.Plot, len(panels))
	for i, name := range panels {
		p, err := r.panel(name, byPanel[name], i == 0, title)
		if err != nil {
			return err
		}
		plots[i] = []*plot.Plot{p}
	}
	width, height := 10*vg.Inch, vg.Length(len(panels))*3.6*vg.Inch
	img := vgimg.New(width, height)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6),
		PadLeft: vg.Points(6), PadRight: vg.Points(6), PadY: vg.Points(14)}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (r *results) panel(name string, rows []row, first bool, title string) (*plot.Plot, error) {
	p := plot.New()
	if first {
		p.Title.Text = title
	}
	p.Y.Label.Text = name
	p.Y.Min = 0
	width := vg.Points(15)
	top := 0.0
	for i, col := range r.Columns {
		vals := make(plotter.Values, len(rows))
		labels := make([]string, len(rows))
		for j, rw := range rows {
			v, ok := r.value(rw.ID, col)
			vals[j] = v
			top = max(top, v)
			switch c := r.Cells[rw.ID][col]; {
			case ok:
				labels[j] = num(v)
			case c != nil && c.Fail != "":
				labels[j] = "FAIL"
			case c != nil && c.Skip != "":
				labels[j] = "n/a"
			}
		}
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return nil, err
		}
		bars.Color = palette[i%len(palette)]
		bars.LineStyle.Width = 0
		bars.Offset = vg.Length(float64(i)-float64(len(r.Columns)-1)/2) * width
		p.Add(bars, &barLabels{vals: vals, labels: labels, offset: bars.Offset})
		if first {
			p.Legend.Add(col, bars)
		}
	}
	if top == 0 {
		top = 1
	}
	p.Y.Max = top * 1.45 // room for the labels and the legend
	p.Legend.Top = true
	p.Legend.Left = false
	names := make([]string, len(rows))
	for j, rw := range rows {
		names[j] = shortLabel(rw.Label)
	}
	p.NominalX(names...)
	p.X.Tick.Label.Font.Size = vg.Points(9)
	return p, nil
}

// shortLabel cuts a row label to its first clause for the X axis.
func shortLabel(s string) string {
	for i, c := range s {
		if c == ',' || c == ':' {
			return s[:i]
		}
	}
	return s
}

// barLabels writes a value above each bar of one column, turned upright.
type barLabels struct {
	vals   plotter.Values
	labels []string
	offset vg.Length
}

func (l *barLabels) Plot(c draw.Canvas, plt *plot.Plot) {
	trX, trY := plt.Transforms(&c)
	sty := text.Style{
		Color:    color.Black,
		Font:     font.From(plot.DefaultFont, vg.Points(7)),
		Rotation: math.Pi / 2,
		XAlign:   text.XLeft,
		YAlign:   text.YCenter,
		Handler:  plot.DefaultTextHandler,
	}
	for j, v := range l.vals {
		if l.labels[j] == "" {
			continue
		}
		pt := vg.Point{X: trX(float64(j)) + l.offset, Y: trY(v) + vg.Points(2)}
		c.FillText(sty, pt, l.labels[j])
	}
}
