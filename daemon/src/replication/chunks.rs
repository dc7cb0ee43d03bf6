//! Splitting what the primary sends into messages of a bounded size.
//!
//! One group commit, one catch-up batch or one snapshot can hold far more than a replication
//! frame may (`PEER_FRAME_LEN_MAX`): a thousand log entries of 1 MiB values are a GiB. Each is
//! sent as several messages of at most `PEER_MESSAGE_BYTES` of records, which the standby
//! takes one after another exactly as it would take the whole.

/// The most record bytes one message carries. A single record larger than this goes alone;
/// the configuration keeps every record far below `PEER_FRAME_LEN_MAX` (`frame_len_max` is
/// capped), so that message still fits.
pub const PEER_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// Room counted for each item's framing (its length prefixes) beside its bytes, so that many
/// tiny items cannot add up past the budget unseen.
const ITEM_OVERHEAD: usize = 16;

/// Splits `items`, in order, into runs whose sizes (`size` of each, plus its framing) add up
/// to at most `budget`; an item larger than `budget` makes a run of its own.
pub fn by_size<T>(items: Vec<T>, size: impl Fn(&T) -> usize, budget: usize) -> Vec<Vec<T>> {
    let mut runs = Vec::new();
    let (mut run, mut bytes) = (Vec::new(), 0);
    for item in items {
        let item_bytes = size(&item).saturating_add(ITEM_OVERHEAD);
        if !run.is_empty() && bytes + item_bytes > budget {
            runs.push(std::mem::take(&mut run));
            bytes = 0;
        }
        bytes += item_bytes;
        run.push(item);
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(runs: &[Vec<Vec<u8>>]) -> Vec<Vec<usize>> {
        runs.iter().map(|run| run.iter().map(Vec::len).collect()).collect()
    }

    #[test]
    fn records_are_split_in_order_into_runs_within_the_budget() {
        let records: Vec<Vec<u8>> = [40, 40, 40, 10, 90, 5].iter().map(|&n| vec![0; n]).collect();
        let runs = by_size(records, Vec::len, 100);
        // 40 + 16 and 40 + 16 fill 112 > 100: each 40 starts a run of its own with what fits.
        assert_eq!(sizes(&runs), [vec![40], vec![40], vec![40, 10], vec![90], vec![5]]);
        for run in &runs {
            let bytes: usize = run.iter().map(|r| r.len() + ITEM_OVERHEAD).sum();
            assert!(bytes <= 100 || run.len() == 1, "a run over the budget has one record: {bytes}");
        }
    }

    #[test]
    fn a_record_larger_than_the_budget_goes_alone_and_nothing_is_lost() {
        let records: Vec<Vec<u8>> = [1, 500, 2, 3].iter().map(|&n| vec![7; n]).collect();
        let runs = by_size(records.clone(), Vec::len, 100);
        assert_eq!(sizes(&runs), [vec![1], vec![500], vec![2, 3]]);
        assert_eq!(runs.concat(), records, "every record, in order");
        assert!(by_size(Vec::<Vec<u8>>::new(), Vec::len, 100).is_empty());
    }

    #[test]
    fn many_tiny_items_are_counted_with_their_framing() {
        let nodes: Vec<(String, Vec<u8>)> = (0..100).map(|i| (format!("/{i}"), Vec::new())).collect();
        let size = |(path, record): &(String, Vec<u8>)| path.len() + record.len();
        let runs = by_size(nodes, size, 1000);
        assert!(runs.len() > 1, "100 keys with their framing exceed 1000 bytes");
        assert!(runs.iter().all(|run| run.iter().map(|n| size(n) + ITEM_OVERHEAD).sum::<usize>() <= 1000));
        assert_eq!(runs.iter().map(Vec::len).sum::<usize>(), 100);
    }
}
