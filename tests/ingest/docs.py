"""Documents generated at test time (nothing binary is committed): the same small handbook as PDF,
DOCX, PPTX, HTML, Markdown and text, with a title, sections, list items and a table."""

from __future__ import annotations

from pathlib import Path

SECTIONS = [
    ("Installing", "Run make demo on a fresh machine. It creates the virtual environment and runs the quickstart.",
     ["make demo", "make test"]),
    ("Serving models", "Endpoints serve local models behind the AI Gateway. Rate limits are exact across processes.",
     ["chat", "embeddings"]),
]
TABLE = [["setting", "default"], ["port", "8080"], ["host", "127.0.0.1"]]
TITLE = "Brickyard Handbook"


def markdown() -> str:
    out = [f"# {TITLE}", "", "A local workspace for GenAI apps.", ""]
    for name, para, items in SECTIONS:
        out += [f"## {name}", "", para, ""] + [f"- {i}" for i in items] + [""]
    out += ["| " + " | ".join(TABLE[0]) + " |", "|---|---|"] + ["| " + " | ".join(r) + " |" for r in TABLE[1:]]
    return "\n".join(out) + "\n"


def html_doc() -> str:
    body = [f"<h1>{TITLE}</h1>", "<p>A local workspace for GenAI apps.</p>"]
    for name, para, items in SECTIONS:
        body += [f"<h2>{name}</h2>", f"<p>{para}</p>", "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"]
    body.append("<table>" + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in TABLE)
                + "</table>")
    body.append("<figure><figcaption>Figure 1: the layers</figcaption></figure>")
    return "<!doctype html><html><head><title>t</title><style>p{}</style></head><body>" + "".join(body) + \
        "<script>alert(1)</script></body></html>"


def docx_doc(path: Path) -> Path:
    import docx

    d = docx.Document()
    d.add_heading(TITLE, level=0)
    d.add_paragraph("A local workspace for GenAI apps.")
    for name, para, items in SECTIONS:
        d.add_heading(name, level=1)
        d.add_paragraph(para)
        for i in items:
            d.add_paragraph(i, style="List Bullet")
    t = d.add_table(rows=len(TABLE), cols=2)
    for r, row in enumerate(TABLE):
        for c, value in enumerate(row):
            t.cell(r, c).text = value
    d.save(str(path))
    return path


def pptx_doc(path: Path) -> Path:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[0])
    slide.shapes.title.text = TITLE
    slide.placeholders[1].text = "A local workspace for GenAI apps."
    for name, para, items in SECTIONS:
        s = deck.slides.add_slide(deck.slide_layouts[1])
        s.shapes.title.text = name
        body = s.placeholders[1].text_frame
        body.text = para
        for i in items:
            p = body.add_paragraph()
            p.text = i
            p.level = 1
    s = deck.slides.add_slide(deck.slide_layouts[5])
    s.shapes.title.text = "Settings"
    table = s.shapes.add_table(len(TABLE), 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, row in enumerate(TABLE):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    deck.save(str(path))
    return path


def pdf_doc(path: Path) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_page()
    pdf.set_font("Helvetica", size=24)
    pdf.cell(0, 14, TITLE, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, "A local workspace for GenAI apps.", new_x="LMARGIN", new_y="NEXT")
    for n, (name, para, items) in enumerate(SECTIONS):
        if n == 1:
            pdf.add_page()
        pdf.set_font("Helvetica", size=16)
        pdf.cell(0, 10, name, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, para, new_x="LMARGIN", new_y="NEXT")
        for i in items:
            pdf.multi_cell(0, 6, f"- {i}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    with pdf.table() as table:
        for row in TABLE:
            cells = table.row()
            for value in row:
                cells.cell(value)
    pdf.output(str(path))
    return path


def write_all(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "handbook.md").write_text(markdown())
    (directory / "handbook.html").write_text(html_doc())
    (directory / "handbook.txt").write_text(markdown().replace("#", "").replace("|", " "))
    return {"md": directory / "handbook.md", "html": directory / "handbook.html", "txt": directory / "handbook.txt",
            "docx": docx_doc(directory / "handbook.docx"), "pptx": pptx_doc(directory / "handbook.pptx"),
            "pdf": pdf_doc(directory / "handbook.pdf")}
