//! What this process holds, read from `/proc`: its open descriptors, its threads and its child
//! processes. The leak tests take a census before and after and compare.

/// How many descriptors this process has open.
pub fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The names of this process's threads, sorted.
pub fn thread_names() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_owned())
        .collect();
    v.sort();
    v
}

/// Every process whose parent is this one (zombies included: they still name us as parent).
pub fn children() -> Vec<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{name}/stat")).ok()?;
            let rest = stat.rsplit_once(')')?.1;
            let mut f = rest.split_whitespace();
            let state = f.next()?;
            (f.next()? == me).then(|| format!("{name} ({state})"))
        })
        .collect()
}
