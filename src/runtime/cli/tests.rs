use super::*;

#[test]
fn the_first_json_document_is_found_after_log_lines() {
    let text = "Config warning: x\n{\"ok\": true, \"errors\": []}\ntrailing";
    assert_eq!(json_document(text).unwrap()["ok"], true);
    assert!(json_document("no json here").is_none());
}
