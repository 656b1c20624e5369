//! Prints a post's public text and a few licensees' copies with their sites.
//!
//! `cargo run --example show -- "L'été : « oui »... it's \"fine\" - really ?"`

use datapact_mark::{PreparedPost, Secret, fold};

fn main() {
    let text = std::env::args().nth(1).unwrap_or_else(|| {
        "L'élève a dit : « c'est fini »... Really? It's \"done\" - see https://ex.com/a'b @o_neil #café".into()
    });
    let secret = Secret::derive(1, b"show");
    let post = PreparedPost::new(&secret, 1, &text);
    println!("public     : {text:?}");
    for s in post.sites() {
        println!(
            "  site {:>14} #{:<2} public {:?} / alternate {:?}, bias {:.3}",
            s.channel.name(),
            s.ordinal,
            s.public_form,
            s.alternate_form,
            s.code.bias()
        );
    }
    for lic in [1001u64, 1002, 1003] {
        let copy = post.render(lic);
        assert_eq!(fold(&copy), fold(&text));
        println!("licensee {lic}: {copy:?}");
    }
}
