//! The grounded answer: composed only from what the search found, so it never names a product,
//! price or policy that is not in the merchant's data, and says so plainly when nothing matched.

use std::fmt::Write as _;

use super::understand::Understood;
use crate::store::{Document, Product, Scored};

/// Longest excerpt of a document quoted in an answer, in characters.
const EXCERPT_CHARS: usize = 240;

/// The answer to a question understood as `understood`, from the products and documents found.
pub(crate) fn compose(
    understood: &Understood,
    products: &[Scored<Product>],
    documents: &[Scored<Document>],
) -> String {
    let constraints = describe(understood);
    let mut answer = String::new();
    if !products.is_empty() {
        let noun = if products.len() == 1 {
            "product"
        } else {
            "products"
        };
        let _ = writeln!(
            answer,
            "Here {} {} {noun} from this store{constraints}:",
            if products.len() == 1 { "is" } else { "are" },
            products.len()
        );
        for Scored { item, .. } in products {
            let _ = write!(answer, "- {}", item.title);
            if let Some(price) = item.price {
                let _ = write!(answer, ", ${price:.2}");
            }
            match item.in_stock {
                Some(true) => answer.push_str(", in stock"),
                Some(false) => answer.push_str(", out of stock"),
                None => {}
            }
            answer.push('\n');
        }
    }
    if !documents.is_empty() {
        if !answer.is_empty() {
            answer.push('\n');
        }
        answer.push_str("From the store's information:\n");
        for Scored { item, .. } in documents {
            let _ = writeln!(answer, "- {}: {}", item.title, excerpt(&item.body));
        }
    }
    if answer.is_empty() {
        let _ = write!(
            answer,
            "I couldn't find anything in this store's catalog or information that matches \
             your question{constraints}. Try other words, or ask about a product by name."
        );
    }
    answer.trim_end().to_owned()
}

/// The constraints as a phrase (" under $100, in stock"), empty when there are none.
fn describe(understood: &Understood) -> String {
    let mut parts = Vec::new();
    match (understood.min_price, understood.max_price) {
        (Some(min), Some(max)) => parts.push(format!("between ${min:.2} and ${max:.2}")),
        (Some(min), None) => parts.push(format!("from ${min:.2}")),
        (None, Some(max)) => parts.push(format!("up to ${max:.2}")),
        (None, None) => {}
    }
    if understood.in_stock_only {
        parts.push("in stock".to_owned());
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" {}", parts.join(", "))
    }
}

/// The start of `body`, cut at a character boundary.
pub(crate) fn excerpt(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => format!("{}…", body[..end].trim_end()),
        None => body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn product(title: &str, price: Option<f64>, in_stock: Option<bool>) -> Scored<Product> {
        Scored {
            item: Product {
                id: "prod_1".to_owned(),
                merchant_id: "acme".to_owned(),
                sku: "S1".to_owned(),
                title: title.to_owned(),
                description: None,
                price,
                image_url: None,
                category: None,
                in_stock,
                created_at: Utc::now(),
                updated_at: Utc::now(),
            },
            score: 1.0,
        }
    }

    #[test]
    fn the_answer_names_only_what_was_found() {
        let understood = Understood {
            max_price: Some(100.0),
            in_stock_only: true,
            ..Understood::default()
        };
        let answer = compose(
            &understood,
            &[product("Oak lamp", Some(49.5), Some(true))],
            &[],
        );
        assert_eq!(
            answer,
            "Here is 1 product from this store up to $100.00, in stock:\n- Oak lamp, $49.50, in stock"
        );
    }

    #[test]
    fn nothing_found_is_said_plainly() {
        let answer = compose(&Understood::default(), &[], &[]);
        assert!(answer.starts_with("I couldn't find anything"), "{answer}");
        assert!(!answer.contains('$'));
    }

    #[test]
    fn excerpts_are_cut_between_characters() {
        let long = "é".repeat(300);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
