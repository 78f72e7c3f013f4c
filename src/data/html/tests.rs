//! Fixtures in the markup of each era the dumps mix (see the renderer in
//! shared/tools/render_sharegpt_html.py), and a no-panic fuzz test.

use super::*;

const SVG: &str = concat!(
    r#"<svg stroke="currentColor" fill="none" stroke-width="2" viewBox="0 0 24 24" "#,
    r#"stroke-linecap="round" stroke-linejoin="round" class="h-4 w-4" height="1em" width="1em" "#,
    r#"xmlns="http://www.w3.org/2000/svg"><path d="M16 4h2a2 2 0 0 1 2 2v14a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2h2"></path>"#,
    r#"<rect x="8" y="2" width="8" height="4" rx="1" ry="1"></rect></svg>"#
);
const HEAD: &str = r#"<div class="flex items-center relative text-gray-200 bg-gray-800 px-4 py-2 text-xs font-sans">"#;
const DEC22: &str = r#"<div class="request-:r0:-0 markdown prose dark:prose-invert break-words light">"#;
const FEB23: &str = r#"<div class="markdown prose w-full break-words dark:prose-invert light">"#;

/// A code block as the dec22 era wrote it: no label, language only in the class.
fn block_dec22(lang: &str, code: &str) -> String {
    let cls = if lang.is_empty() { String::new() } else { format!(" language-{lang}") };
    format!(
        r#"<pre><div class="bg-black mb-4 rounded-md">{HEAD}<button class="flex ml-auto gap-2">{SVG}Copy code</button></div><div class="p-4"><code class="!whitespace-pre-wrap hljs{cls}">{code}</code></div></div></pre>"#
    )
}

/// jan23/feb23: a `<span>` label in the header, and the class.
fn block_feb23(lang: &str, code: &str) -> String {
    let label = if lang.is_empty() { String::new() } else { format!(r#"<span class="">{lang}</span>"#) };
    let cls = if lang.is_empty() { String::new() } else { format!(" language-{lang}") };
    format!(
        r#"<pre><div class="bg-black mb-4 rounded-md">{HEAD}{label}<button class="flex ml-auto gap-2">{SVG}Copy code</button></div><div class="p-4 overflow-y-auto"><code class="!whitespace-pre hljs{cls}">{code}</code></div></div></pre>"#
    )
}

/// mar23, the sanitizer: class-less label and code, a bare `<svg></svg>Copy code`.
fn block_mar23(lang: &str, code: &str) -> String {
    format!(
        r#"<pre><div class="bg-black mb-4 rounded-md">{HEAD}<span>{lang}</span><svg></svg>Copy code</div><div><code>{code}</code></div></div></pre>"#
    )
}

fn md(html: &str) -> String {
    to_markdown(html)
}

const PY_HL: &str = "<span class=\"hljs-keyword\">def</span> f(x):\n    <span class=\"hljs-keyword\">if</span> x &lt; 1 &amp;&amp; y:\n\n        <span class=\"hljs-keyword\">return</span> <span class=\"hljs-string\">&quot;a&quot;</span>\n";
const PY_MD: &str = "def f(x):\n    if x < 1 && y:\n\n        return \"a\"";

#[test]
fn code_block_dec22_class_only() {
    let html = format!("{DEC22}<p>Run:</p>{}<p>Done.</p></div>", block_dec22("python", PY_HL));
    assert_eq!(md(&html), format!("Run:\n```python\n{PY_MD}\n```\nDone."));
}

#[test]
fn code_block_feb23_labelled() {
    let html = format!("{FEB23}<p>Run:</p>{}<p>Done.</p></div>", block_feb23("python", PY_HL));
    assert_eq!(md(&html), format!("Run:\n```python\n{PY_MD}\n```\nDone."));
}

#[test]
fn code_block_without_language() {
    let html = format!("{FEB23}{}</div>", block_feb23("", "x = 1\n"));
    assert_eq!(md(&html), "```\nx = 1\n```");
    let html = format!("{DEC22}{}</div>", block_dec22("", "x = 1\n"));
    assert_eq!(md(&html), "```\nx = 1\n```");
}

#[test]
fn code_block_mar23_sanitized() {
    let code = PY_HL.replace(" class=\"hljs-keyword\"", "").replace(" class=\"hljs-string\"", "");
    let html = format!("<div><p>Run:</p>{}<p>Done.</p></div>", block_mar23("python", &code));
    assert_eq!(md(&html), format!("Run:\n```python\n{PY_MD}\n```\nDone."));
    let html = format!("<div>{}</div>", block_mar23("", "a\n"));
    assert_eq!(md(&html), "```\na\n```");
}

#[test]
fn code_block_without_header() {
    let html = r#"<div><pre><code class="language-rust">let a = 1;
</code></pre></div>"#;
    assert_eq!(md(html), "```rust\nlet a = 1;\n```");
}

#[test]
fn code_keeps_tabs_blank_lines_and_markup_characters() {
    let html = format!("<div>{}</div>", block_feb23("go", "func f() {\n\tx := a &lt;- b\n\n\n\treturn\n}\n"));
    assert_eq!(md(&html), "```go\nfunc f() {\n\tx := a <- b\n\n\n\treturn\n}\n```");
}

#[test]
fn consecutive_code_blocks_do_not_merge() {
    let html = format!("{FEB23}{}{}</div>", block_feb23("bash", "ls\n"), block_feb23("", "cd\n"));
    assert_eq!(md(&html), "```bash\nls\n```\n```\ncd\n```");
    let html = format!("{FEB23}{}</div>", block_feb23("", ""));
    assert_eq!(md(&html), "```\n```");
}

#[test]
fn code_block_inside_list_item_stays_in_it() {
    let html = format!(
        "<div><ol><li>Install:{}</li><li>Run</li></ol></div>",
        block_dec22("sh", "pip install x\n\nx --help\n")
    );
    assert_eq!(md(&html), "1. Install:\n\t```sh\n\tpip install x\n\n\tx --help\n\t```\n2. Run");
}

#[test]
fn lazy_fence_line_in_a_list_item_keeps_its_first_code_line_unindented() {
    // FastChat's markdown indents a fence opened in a nested item but not the
    // code line after it: "\t* Run:\n\t```\naws configure\n```". Python-Markdown took
    // the opener and that line for lazy text of the item.
    let html = "<div><ol><li>Configure:<ul><li>Run this:\n```\naws configure</li></ul></li><li>Next</li></ol></div>";
    assert_eq!(md(html), "1. Configure:\n\t* Run this:\n\t```\naws configure\n2. Next");
    let html = "<div><ul><li>Add:\n```php\n&lt;?php\nreturn 1;</li></ul></div>";
    assert_eq!(md(html), "* Add:\n```php\n<?php\nreturn 1;");
}

#[test]
fn lazy_list_lines_in_a_nested_item_stay_at_the_margin() {
    // "1. A:\n\t* x.\n2. B:\n\t* y.\n3. C:": Python-Markdown took "2. B:" for lazy text of
    // the nested item; the line was at the margin, not indented with the item.
    let html = "<div><ol><li>A:<ul><li>x.\n2. B:</li><li>y.\n3. C:</li></ul></li></ol></div>";
    assert_eq!(md(html), "1. A:\n\t* x.\n2. B:\n\t* y.\n3. C:");
    let html = "<div><ol><li>A:<ul><li>Type: Flying\n*</li></ul></li></ol></div>";
    assert_eq!(md(html), "1. A:\n\t* Type: Flying\n*");
    // other lazy text of a nested item keeps the item's indent
    let html = "<div><ol><li>A:<ul><li>x\ncontinued</li></ul></li></ol></div>";
    assert_eq!(md(html), "1. A:\n\t* x\n\tcontinued");
}

#[test]
fn commonmark_lists_interrupted_by_bullets_keep_their_numbers() {
    // What the ChatGPT page itself rendered (CommonMark) for "1. A:\n* x\n2. B:\n* y": the bullet
    // line closes the ordered list and the next item opens one with `start`, so the numbers are
    // in the HTML, unlike Python-Markdown's single `<ol>` with lazy lines.
    let html = "<div><ol><li>A:</li></ol><ul><li>x</li></ul><ol start=\"2\"><li>B:</li></ol><ul><li>y</li></ul></div>";
    assert_eq!(md(html), "1. A:\n\n* x\n\n2. B:\n\n* y");
}

#[test]
fn code_pasted_as_text_keeps_the_space_before_its_first_line() {
    // Unfenced code written one space in ("\n\n // Select Database\n if ( con ) {"): Python-Markdown
    // drops the space before a paragraph's first line only, so the lines after it tell.
    let html = "<div><p>Then:</p><p>// Select Database\n if ( con ) {\n const db = 1;</p><p>&lt;?php\n try {</p></div>";
    assert_eq!(md(html), "Then:\n\n // Select Database\n if ( con ) {\n const db = 1;\n\n <?php\n try {");
    // prose with one indented line, or lines indented further, stays as it is
    let html = "<div><p>Dear Sir,\n  I write.</p><p>a\n b\nc</p></div>";
    assert_eq!(md(html), "Dear Sir,\n  I write.\n\na\n b\nc");
    // only top-level paragraphs: in a list item or a table cell the marker comes first
    let html = "<div><ol><li><p>a\n b</p></li></ol><ul><li><p>Dear all,\n I write</p></li></ul></div>";
    assert_eq!(md(html), "1. a\n b\n\n* Dear all,\n I write");
}

#[test]
fn paragraphs_headings_rules() {
    let html = "<div><h1>Title</h1><p>One\nline two</p><h2>Sub</h2><h3>Three</h3><p>x</p><hr /><p>y</p></div>";
    assert_eq!(md(html), "# Title\n\nOne\nline two\n\n## Sub\n\n### Three\n\nx\n\n---\n\ny");
}

#[test]
fn inline_markup() {
    let html = r#"<div><p>A <strong>bold</strong> and <em>it</em> <code>a_b</code>, <a href="https://x.org/a?b=1&amp;c=2">link</a> and <img alt="pic" src="p.png" />.</p></div>"#;
    assert_eq!(md(html), "A **bold** and *it* `a_b`, [link](https://x.org/a?b=1&c=2) and ![pic](p.png).");
}

#[test]
fn inline_code_with_backticks() {
    assert_eq!(md("<div><p><code>a`b</code></p></div>"), "``a`b``");
    assert_eq!(md("<div><p><code>`x`</code></p></div>"), "`` `x` ``");
}

#[test]
fn line_break() {
    assert_eq!(md("<div><p>a<br />\nb</p></div>"), "a  \nb");
}

#[test]
fn entities_and_literal_tags() {
    let html = "<div><p>Put &lt;classpath&gt; in &quot;x&quot; &amp; it&#x27;s&#39; &nbsp;&unknown; &amp</p></div>";
    assert_eq!(md(html), "Put <classpath> in \"x\" & it's' \u{a0}&unknown; &amp");
}

#[test]
fn references_no_html_writer_produces_stay_literal_text() {
    // Python-Markdown (and the browser's serializer) write only `&amp;` `&lt;` `&gt;` `&quot;`
    // (`&nbsp;` `&#x27;` `&#39;` from the page and the sanitizer) in text: any other reference
    // there was typed by the model (MathJax residue, HTML shown as text) and stays as written.
    let html =
        "<div><p>&lt;span aria-hidden=\"true\"&gt;&times;&lt;/span&gt;\n&#x03B4;T(t)=&#x2211; &#8212; &copy;</p></div>";
    assert_eq!(md(html), "<span aria-hidden=\"true\">&times;</span>\n&#x03B4;T(t)=&#x2211; &#8212; &copy;");
    // In code every reference is the escaping of the code text: all decoded.
    assert_eq!(md("<div><p><code>&amp;times; &times;</code></p></div>"), "`&times; \u{d7}`");
}

#[test]
fn underscores_and_asterisks() {
    // identifiers stay as they are; only what could form emphasis is escaped
    assert_eq!(
        md("<div><p>user_id and __init__ and 2 * 3 * 4</p></div>"),
        "user_id and \\_\\_init\\_\\_ and 2 \\* 3 \\* 4"
    );
}

#[test]
fn block_starts_are_escaped_only_where_they_would_reparse() {
    assert_eq!(md("<div><p>1. not a list\n2. lazy line</p></div>"), "1\\. not a list\n2. lazy line");
    assert_eq!(md("<div><p># not a heading</p></div>"), "\\# not a heading");
    assert_eq!(md("<div><p>- dash\n* lazy bullet</p></div>"), "\\- dash\n* lazy bullet");
}

#[test]
fn nested_lists_with_start() {
    let html = "<div><p>Intro:</p><ol start=\"3\"><li>Three<ul><li>a<ul><li>deep</li></ul></li><li>b</li></ul></li><li>Four<ol><li>x</li></ol></li></ol><p>End</p></div>";
    assert_eq!(md(html), "Intro:\n\n3. Three\n\t* a\n\t\t+ deep\n\t* b\n4. Four\n\t1. x\n\nEnd");
}

#[test]
fn bullets_by_depth_and_lazy_lines() {
    let html = "<div><ul><li>a<ul><li>b<ul><li>c</li></ul></li></ul></li></ul></div>";
    assert_eq!(md(html), "* a\n\t+ b\n\t\t- c");
    // Python-Markdown folds "1. x\n* y\n\t+ z" into the item: the bullet line stays
    // lazy text, its sub-list keeps the bullet of its depth.
    let html = "<div><ol><li>x\n* y<ul><li>z</li></ul></li><li>w</li></ol></div>";
    assert_eq!(md(html), "1. x\n* y\n\t+ z\n1. w");
    // 4-space indents in lazy text were tabs
    assert_eq!(md("<div><p>a:\n    + b</p></div>"), "a:\n\t+ b");
}

#[test]
fn lazy_bullet_numbering() {
    // "1. x\n* y\n1. w" and "1. x\n* y\n2. w" render alike. A lazy bullet under
    // item 1 mostly came from lists numbered "1." throughout; once the list has
    // counted past 1 it goes on counting.
    let html = "<div><ol><li>A:\n* a</li><li>B:\n* b</li><li>C</li></ol></div>";
    assert_eq!(md(html), "1. A:\n* a\n1. B:\n* b\n1. C");
    let html = "<div><ol><li>A</li><li>B:\n* b</li><li>C:\n* c</li><li>D</li></ol></div>";
    assert_eq!(md(html), "1. A\n2. B:\n* b\n3. C:\n* c\n4. D");
}

#[test]
fn inline_elements_on_consecutive_lines() {
    // The page dropped the newline between tags of consecutive source lines.
    let html = "<div><p><strong>Treant</strong><em>Huge plant</em></p><p><strong>Actions</strong><strong>Slam.</strong> Hit.</p></div>";
    assert_eq!(md(html), "**Treant**\n*Huge plant*\n\n**Actions**\n**Slam.** Hit.");
    let html = r#"<div><p><img alt="a" src="x.png"><img alt="b" src="y.png"></p></div>"#;
    assert_eq!(md(html), "![a](x.png)\n![b](y.png)");
    let html = "<div><p><code>a,</code><code>b</code> and <a href=\"u\">l</a><strong>c</strong></p></div>";
    assert_eq!(md(html), "`a,`\n`b` and [l](u)\n**c**");
    // nested or separated by text: untouched
    assert_eq!(md("<div><p><strong><em>x</em></strong> <em>y</em></p></div>"), "***x*** *y*");
}

#[test]
fn hashtags_read_as_headings() {
    // Python-Markdown takes "#tag" (no space) for a heading; such lines come back as written.
    let html = "<div><ol><li><h1>workout</h1></li><li><h1>VeganLife</h1></li></ol></div>";
    assert_eq!(md(html), "1. #workout\n2. #VeganLife");
    assert_eq!(md("<div><ul><li><h1>00aeef: bright blue</h1></li></ul></div>"), "* #00aeef: bright blue");
    assert_eq!(
        md("<div><p>Tags:</p><h1>SalesPipeline #Networking #ISP</h1></div>"),
        "Tags:\n\n#SalesPipeline #Networking #ISP"
    );
    assert_eq!(md("<div><h1>include &lt;exiv2/image.hpp&gt;</h1></div>"), "#include <exiv2/image.hpp>");
    assert_eq!(md("<div><h1>2</h1><p>x</p></div>"), "#2\n\nx");
    // real headings keep the ATX space
    assert_eq!(
        md("<div><h1>Conclusion</h1><h1>Getting started with #rust</h1></div>"),
        "# Conclusion\n\n# Getting started with #rust"
    );
}

#[test]
fn table() {
    let html = "<div><table><thead><tr><th>Name</th><th style=\"text-align: center;\">A|B</th></tr></thead><tbody><tr><td><strong>x</strong></td><td></td></tr><tr><td>y</td><td>1</td></tr></tbody></table><p>After</p></div>";
    assert_eq!(md(html), "| Name | A\\|B |\n| --- | :---: |\n| **x** |  |\n| y | 1 |\n\nAfter");
}

#[test]
fn table_without_body_gets_no_empty_row() {
    // Python-Markdown gives a table with no body rows one empty row.
    let html = "<div><table><thead><tr><th>x</th><th>y</th></tr></thead><tbody><tr><td></td><td></td></tr></tbody></table><p>b</p></div>";
    assert_eq!(md(html), "| x | y |\n| --- | --- |\n\nb");
    // an empty row among others is the model's
    let html = "<div><table><thead><tr><th>x</th><th>y</th></tr></thead><tbody><tr><td></td><td></td></tr><tr><td>1</td><td>2</td></tr></tbody></table></div>";
    assert_eq!(md(html), "| x | y |\n| --- | --- |\n|  |  |\n| 1 | 2 |");
}

#[test]
fn paragraph_right_after_a_table_is_not_a_row() {
    // "| q | r |\n|---|---|\n| 1 | 2 |\nTotal: 5 units of work\nConclusion:": Python-Markdown
    // made each line after the table a row with the line in its first cell.
    let row = |a: &str| format!("<tr><td>{a}</td><td></td><td></td></tr>");
    let html = format!(
        "<div><table><thead><tr><th>q</th><th>r</th><th>s</th></tr></thead><tbody><tr><td>1</td><td>2</td><td>3</td></tr>{}{}</tbody></table><p>End</p></div>",
        row("Total estimated cost: $975,000 (excluding updates)"),
        row("Conclusion:")
    );
    assert_eq!(
        md(&html),
        "| q | r | s |\n| --- | --- | --- |\n| 1 | 2 | 3 |\nTotal estimated cost: $975,000 (excluding updates)\nConclusion:\n\nEnd"
    );
    // short labels with empty cells, or rows after them with more cells, are rows
    let html = format!(
        "<div><table><thead><tr><th>q</th><th>r</th><th>s</th></tr></thead><tbody>{}<tr><td>1</td><td>2</td><td>3</td></tr>{}</tbody></table></div>",
        row("Section header with words in it"),
        row("Total")
    );
    assert_eq!(
        md(&html),
        "| q | r | s |\n| --- | --- | --- |\n| Section header with words in it |  |  |\n| 1 | 2 | 3 |\n| Total |  |  |"
    );
    // a phrase, not a sentence, after a full row: a row of a sparse table
    let html = format!(
        "<div><table><thead><tr><th>q</th><th>r</th><th>s</th></tr></thead><tbody><tr><td>1</td><td>2</td><td>3</td></tr>{}</tbody></table></div>",
        row("Optimize warehouse layout for better flow")
    );
    assert_eq!(
        md(&html),
        "| q | r | s |\n| --- | --- | --- |\n| 1 | 2 | 3 |\n| Optimize warehouse layout for better flow |  |  |"
    );
}

#[test]
fn wrapper_detection_and_passthrough() {
    assert!(is_chatgpt_html(
        r#"<div class="markdown prose w-full break-words dark:prose-invert light"><p>x</p></div>"#
    ));
    assert!(is_chatgpt_html(
        r#"<div class="request-:r0:-0 markdown prose dark:prose-invert break-words light"><p>x</p></div>"#
    ));
    assert!(is_chatgpt_html("<div><p>x</p></div>"));
    assert!(!is_chatgpt_html("Here is **markdown**:\n```html\n<div>x</div>\n```"));
    assert!(!is_chatgpt_html("<div>hello"));
    assert!(!is_chatgpt_html("<divider>"));
    assert!(!is_chatgpt_html(""));
    assert_eq!(md("<div><p>\u{200b}</p></div>"), "\u{200b}");
}

#[test]
fn decode_entities_cases() {
    assert!(matches!(decode_entities("plain < text"), Cow::Borrowed(_)));
    assert_eq!(decode_entities("a &lt;b&gt; &amp; &quot;c&quot; &#x27;d&#39;"), "a <b> & \"c\" 'd'");
    assert_eq!(decode_entities("&nbsp;&hellip;&#65;&#x42;&#X43;"), "\u{a0}\u{2026}ABC");
    assert_eq!(decode_entities("AT&T &amp &#; &#xZZ; &bogus; &"), "AT&T &amp &#; &#xZZ; &bogus; &");
    assert_eq!(decode_entities("&#99999999;"), "\u{fffd}");
    assert_eq!(decode_entities("&#0;&#xD800;é&eacute;"), "\u{fffd}\u{fffd}éé");
}

#[test]
fn malformed_input_is_tolerated() {
    assert_eq!(md("<div><p>a < b and c <3 <</p>"), "a < b and c <3 <");
    assert_eq!(md("<div><p>cut <str"), "cut <str");
    assert_eq!(md("<div><ul><li>open"), "* open");
    assert_eq!(md("<div><pre><div><code>x = 1"), "```\nx = 1\n```");
    assert_eq!(md("</p></li></ul>text"), "text");
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn never_panics_on_truncated_or_random_input() {
    let fixtures = [
        format!("{FEB23}<p>Run <code>x</code> &amp; <strong>é</strong>:</p>{}<ol start=\"2\"><li>a<ul><li>b ü</li></ul></li></ol><table><thead><tr><th>h</th></tr></thead><tbody><tr><td>ß</td></tr></tbody></table></div>", block_feb23("python", PY_HL)),
        format!("<div><h1>T</h1><p>x &#x27; y</p>{}<hr /><p>日本語 &lt;tag&gt;</p></div>", block_mar23("js", "<span>const</span> a = 1;\n")),
        format!("{DEC22}{}<ul><li>x<br />y</li></ul><blockquote><p>q</p></blockquote></div>", block_dec22("", "a\n")),
    ];
    let mut n = 0;
    for f in &fixtures {
        for cut in 0..=f.len() {
            if f.is_char_boundary(cut) {
                let _ = to_markdown(&f[..cut]);
                let _ = to_markdown(&f[cut..]);
                n += 2;
            }
        }
    }
    // random soup of markup-ish pieces and multibyte text
    let pieces = [
        "<",
        ">",
        "/",
        "&",
        ";",
        "#",
        "x",
        "<p>",
        "</p>",
        "<li>",
        "</li>",
        "<ul>",
        "<ol start=\"9\">",
        "</ol>",
        "<pre>",
        "</pre>",
        "<code>",
        "</code>",
        "<span>",
        "</span>",
        "<table>",
        "<tr>",
        "<th>",
        "<td>",
        "</td>",
        "</tr>",
        "<blockquote>",
        "<a href=\"",
        "\">",
        "</a>",
        "<em>",
        "*",
        "_",
        "|",
        "\n",
        " ",
        "    ",
        "\t",
        "é",
        "日",
        "&lt;",
        "&#",
        "&#x",
        "1. ",
        "- ",
        "`",
        "<!--",
        "-->",
        "<h2>",
        "<br />",
        "<hr />",
        "\"",
        "'",
        "=",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut s = String::new();
    for _ in 0..3000 {
        s.clear();
        for _ in 0..rng.below(60) {
            s.push_str(pieces[rng.below(pieces.len())]);
        }
        let _ = to_markdown(&s);
        let _ = is_chatgpt_html(&s);
        let _ = decode_entities(&s);
        n += 1;
    }
    // raw bytes, made valid UTF-8 lossily
    for _ in 0..2000 {
        let bytes: Vec<u8> = (0..rng.below(80)).map(|_| (rng.next() >> 56) as u8).collect();
        let s = String::from_utf8_lossy(&bytes);
        let _ = to_markdown(&s);
        let _ = decode_entities(&s);
        n += 1;
    }
    // deep nesting stays bounded
    let deep = "<ul><li>x".repeat(20_000) + &"<blockquote><p>".repeat(20_000);
    let out = to_markdown(&deep);
    assert!(out.len() < deep.len() * 4);
    assert!(n > 5000);
}

#[test]
fn the_conversation_scan_stays_linear_when_code_blocks_never_close() {
    // Each `</ol><pre>` counts as a restart when its block's `</pre>` is followed by `<ol>`; many
    // of them before one `</pre>` share it, and with none the scan stops (it once searched the
    // rest of the turn again for each: 1.28M of them took minutes).
    let shared = "</ol><pre>x</ol><pre>y</pre><ol>";
    let evidence = LazyListNumbering::of_conversation([shared, "<ol start=\"3\">", "<ol start=\"4\">"]);
    assert_eq!(evidence, LazyListNumbering::RestartAfterFirst, "two restarts outweigh two starts");
    let evidence = LazyListNumbering::of_conversation([shared, "<ol start=\"3\"><ol start=\"4\"><ol start=\"5\">"]);
    assert_eq!(evidence, LazyListNumbering::Continue);
    let hostile = "</ol><pre>".repeat(1_000_000);
    assert_eq!(LazyListNumbering::of_conversation([hostile.as_str()]), LazyListNumbering::RestartAfterFirst);
}
