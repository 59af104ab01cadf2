"""What a good generation of the library's faq and table templates looks like, line by line: the regular
expressions the constrained-generation tests hold every generation to (the real engine, llama.cpp or vLLM)."""

SHAPES = {
    "faq": r"(?:Question: [A-Z][^\n?]{{8,120}}\?\nAnswer: {s}(?: {s}){{0,2}}\n\n){{2,3}}".format(
        s=r"[A-Z0-9`\"(](?:[^\n.!?]|[.!?][^ \n.!?]){10,220}[.!?]"),
    # (the title line is optional: parsing drops a title that reads as a lead-in, "Here is the table:")
    "table": r"(?:[A-Z][^\n|]{{3,60}}\n\n)?(?:{r2}\|---\|---\|\n(?:{r2}){{2,6}}|{r3}\|---\|---\|---\|\n"
             r"(?:{r3}){{2,6}})\nQuestion: [A-Z][^\n?]{{8,120}}\?\nAnswer: {s}(?: {s})?\n".format(
                 s=r"[A-Z0-9`\"(](?:[^\n.!?]|[.!?][^ \n.!?]){1,200}[.!?]",
                 r2=r"\| [^|\n ][^|\n]{0,40} \| [^|\n ][^|\n]{0,40} \|\n",
                 r3=r"\| [^|\n ][^|\n]{0,40} \| [^|\n ][^|\n]{0,40} \| [^|\n ][^|\n]{0,40} \|\n"),
}
