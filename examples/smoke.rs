use concurrent_futures::{ProcessPoolExecutor, Queued, MapOptions};
fn sq(n: u64) -> (u32, u64) { (std::process::id(), n * n) }
fn main() {
    println!("main runs in {}", std::process::id());
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let t = std::time::Instant::now();
    let r = pool.submit(sq, 7).unwrap().result(None).unwrap();
    println!("{r:?} first {:?}", t.elapsed());
    let t = std::time::Instant::now();
    for i in 0..10000 { pool.submit(sq, i).unwrap().result(None).unwrap(); }
    println!("roundtrip {:?}", t.elapsed() / 10000);
    let v: Vec<_> = pool.map_with(sq, 0..20, MapOptions::new().chunksize(3)).unwrap().into_iter().map(|r| r.unwrap().1).collect();
    println!("{v:?}");
    let p = pool.submit(|(): ()| -> u8 { panic!("boom") }, ()).unwrap().result(None);
    println!("{p:?}");
    println!("pids {:?}", pool.worker_pids());
    pool.shutdown(Queued::Run);
    println!("after {:?}", pool.worker_pids());
}
