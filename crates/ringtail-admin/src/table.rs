//! Text output as rpk and Kafka's tools print it: aligned columns with upper-case headers
//! separated by two spaces (no trailing spaces), and `TITLE` / `=====` section headings.

/// Columns of text, left-aligned to the widest cell (by `char` count).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers (printed as given, upper case by convention).
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Table {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// A table without a header row (key/value summaries).
    pub fn headless() -> Table {
        Table::default()
    }

    /// Appends a row; missing cells print empty, extra cells widen the table.
    pub fn push<S: Into<String>>(&mut self, row: impl IntoIterator<Item = S>) {
        self.rows.push(row.into_iter().map(Into::into).collect());
    }

    /// Rows pushed so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no row was pushed.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as lines, each ending in `\n`; cells of a column padded to its widest cell
    /// plus two spaces, the last cell of a line unpadded.
    pub fn render(&self) -> String {
        let lines: Vec<&Vec<String>> = std::iter::once(&self.headers)
            .filter(|h| !h.is_empty())
            .chain(self.rows.iter())
            .collect();
        let columns = lines.iter().map(|l| l.len()).max().unwrap_or(0);
        let mut widths = vec![0usize; columns];
        for line in &lines {
            for (i, cell) in line.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in lines {
            let mut text = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = line.get(i).map(String::as_str).unwrap_or("");
                text.push_str(cell);
                if i + 1 < columns {
                    let pad = width - cell.chars().count() + 2;
                    text.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A section heading as rpk prints it: the title, then `=` under each of its characters.
pub fn section(title: &str) -> String {
    format!("{title}\n{}\n", "=".repeat(title.chars().count()))
}

/// `-` for a missing value, else the value (Kafka's tools print `-` for unknown offsets).
pub fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// Comma-joined list (`1,2,3`), as rpk prints replica sets.
pub fn joined<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell() {
        let mut table = Table::new(["NAME", "PARTITIONS", "REPLICAS"]);
        table.push(["a-long-topic-name", "3", "1"]);
        table.push(["t", "12", "1"]);
        assert_eq!(
            table.render(),
            "NAME               PARTITIONS  REPLICAS\n\
             a-long-topic-name  3           1\n\
             t                  12          1\n"
        );
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn no_trailing_spaces_and_short_rows() {
        let mut table = Table::new(["A", "B", "C"]);
        table.push(["x"]);
        table.push(["y", "", "z"]);
        let text = table.render();
        assert!(text.lines().all(|l| !l.ends_with(' ')), "{text:?}");
        assert_eq!(text, "A  B  C\nx\ny     z\n");
    }

    #[test]
    fn headless_tables_and_unicode_widths() {
        let mut table = Table::headless();
        table.push(["NAME", "tópico"]);
        table.push(["PARTITIONS", "1"]);
        assert_eq!(table.render(), "NAME        tópico\nPARTITIONS  1\n");
        assert!(Table::headless().render().is_empty());
        assert!(Table::new(["ONLY"]).is_empty());
        assert_eq!(Table::new(["ONLY"]).render(), "ONLY\n");
    }

    #[test]
    fn sections_and_cells() {
        assert_eq!(section("BROKERS"), "BROKERS\n=======\n");
        assert_eq!(or_dash(None::<i64>), "-");
        assert_eq!(or_dash(Some(5)), "5");
        assert_eq!(joined(&[1, 2, 3]), "1,2,3");
        assert_eq!(joined::<i32>(&[]), "");
    }
}
