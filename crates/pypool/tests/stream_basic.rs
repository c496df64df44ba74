//! Streams through the pool: chunks in order, then the result; the stream
//! holds its worker's slot until its end; a session's stream binds it;
//! programs stream with their definition; refusals come as the only item.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use futures::StreamExt;
use pypool::{PoolError, ProgramSpec, StreamItem};
use pypool_mock::{ChunkDelivery, Delivery};
use serde_json::{Value, json};
use support::scripted::{next_request, scripted_pool};
use support::{NO_TIME, spawn_execute, within};

/// Reads a whole stream.
async fn read_all(stream: pypool::ExecuteStream) -> Vec<Result<StreamItem, PoolError>> {
    stream.collect().await
}

fn chunks(values: &[Value]) -> Vec<StreamItem> {
    values.iter().cloned().map(StreamItem::Chunk).collect()
}

#[tokio::test(start_paused = true)]
async fn chunks_arrive_in_order_then_the_result() {
    let (pool, _spawns, mut workers) = scripted_pool(1, |builder| builder).await;
    let worker = &mut workers[0];
    let reading = tokio::spawn(read_all(pool.execute_stream("count", json!({"n": 3}))));
    let request = next_request(worker).await;
    assert_eq!(request.command(), "count");
    assert_eq!(request.stream_window(), Some(32), "the default window");
    for n in 0..3 {
        assert_eq!(request.send_chunk(json!(n)), ChunkDelivery::Buffered);
    }
    assert_eq!(request.reply(json!({"total": 3})), Delivery::Delivered);
    let items = within(NO_TIME, "the stream's end", reading).await.unwrap();
    let mut expected: Vec<Result<StreamItem, PoolError>> = chunks(&[json!(0), json!(1), json!(2)])
        .into_iter()
        .map(Ok)
        .collect();
    expected.push(Ok(StreamItem::Done(json!({"total": 3}))));
    assert_eq!(items.len(), expected.len(), "{items:?}");
    for (got, want) in items.iter().zip(&expected) {
        assert_eq!(got.as_ref().unwrap(), want.as_ref().unwrap());
    }
    let status = pool.status();
    assert_eq!(status.in_flight, 0);
    assert_eq!(status.counters.requests_ok, 1);
}

#[tokio::test(start_paused = true)]
async fn a_stream_holds_its_worker_until_it_ends() {
    let (pool, _spawns, mut workers) = scripted_pool(1, |builder| builder).await;
    let worker = &mut workers[0];
    let mut stream = pool.execute_stream("gen", json!({}));
    let (first, request) = tokio::join!(stream.next(), async {
        let request = next_request(worker).await;
        assert_eq!(request.send_chunk(json!("a")), ChunkDelivery::Buffered);
        request
    });
    assert_eq!(first.unwrap().unwrap(), StreamItem::Chunk(json!("a")));
    assert_eq!(stream.worker_id(), Some(worker.worker_id()));
    assert_eq!(pool.status().in_flight, 1);

    // The only worker (capacity 1) is the stream's: a plain call waits.
    let waiting = spawn_execute(&pool, "echo", json!({}));
    tokio::time::advance(std::time::Duration::from_secs(5)).await;
    assert!(worker.try_next_request().is_none(), "lent twice");

    assert_eq!(request.reply(Value::Null), Delivery::Delivered);
    assert_eq!(
        within(NO_TIME, "the end", stream.next())
            .await
            .unwrap()
            .unwrap(),
        StreamItem::Done(Value::Null)
    );
    assert!(stream.next().await.is_none(), "nothing after the end");
    let pending = within(NO_TIME, "the waiting call", worker.next_request())
        .await
        .unwrap();
    assert_eq!(pending.reply(json!("served")), Delivery::Delivered);
    assert_eq!(waiting.await.unwrap().unwrap(), json!("served"));
}

#[tokio::test(start_paused = true)]
async fn a_sessions_stream_binds_the_session_to_its_worker() {
    let (pool, _spawns, mut workers) = scripted_pool(2, |builder| builder).await;
    let session = pool.session("s1").unwrap();
    let reading = tokio::spawn(read_all(session.execute_stream("gen", json!({}))));
    // Either worker may take it.
    let (left, right) = workers.split_at_mut(1);
    let (request, index) = tokio::select! {
        request = left[0].next_request() => (request.unwrap(), 0),
        request = right[0].next_request() => (request.unwrap(), 1),
    };
    assert_eq!(request.send_chunk(json!(1)), ChunkDelivery::Buffered);
    assert_eq!(request.reply(json!("end")), Delivery::Delivered);
    let items = reading.await.unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1].as_ref().unwrap(), &StreamItem::Done(json!("end")));

    // The streaming worker went back last (the other is least recently
    // used); the session's next call still goes to it.
    let call = {
        let session = session.clone();
        tokio::spawn(async move { session.execute("echo", json!({})).await })
    };
    let pending = within(NO_TIME, "the session's call", workers[index].next_request())
        .await
        .unwrap();
    assert_eq!(pending.reply(json!("same")), Delivery::Delivered);
    assert_eq!(call.await.unwrap().unwrap(), json!("same"));
    assert!(workers[1 - index].try_next_request().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_program_streams_with_its_definition_and_reports_usage() {
    let (pool, _spawns, mut workers) = scripted_pool(1, |builder| builder).await;
    pool.create_program("qa", ProgramSpec::python("my_pkg.gen:answer"))
        .await
        .unwrap();
    let mut stream = pool.execute_program_stream("qa", json!({"question": "2+2?"}));
    let (first, request) = tokio::join!(stream.next(), async {
        let request = next_request(&mut workers[0]).await;
        assert_eq!(
            request.send_chunk(json!({"field": "answer", "chunk": "4"})),
            ChunkDelivery::Buffered
        );
        request
    });
    assert_eq!(request.command(), "pypool.run_program");
    let args = &request.request().args;
    assert_eq!(args["program_id"], json!("qa"));
    assert_eq!(args["inputs"], json!({"question": "2+2?"}));
    assert!(
        args["definition"].is_object(),
        "a stream ships the definition: {args:?}"
    );
    assert_eq!(
        first.unwrap().unwrap(),
        StreamItem::Chunk(json!({"field": "answer", "chunk": "4"}))
    );
    let usage = json!({"calls": 1, "prompt_tokens": 12, "completion_tokens": 3, "cost": null});
    assert_eq!(
        request.reply_with_usage(json!({"answer": "4"}), usage.clone()),
        Delivery::Delivered
    );
    assert_eq!(
        stream.next().await.unwrap().unwrap(),
        StreamItem::Done(json!({"answer": "4"}))
    );
    assert_eq!(stream.usage(), Some(&usage));
}

#[tokio::test(start_paused = true)]
async fn refused_arguments_are_the_streams_only_item() {
    let (pool, _spawns, mut workers) = scripted_pool(1, |builder| builder).await;
    let items = read_all(pool.execute_stream("pypool.run_program", json!({}))).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].as_ref().unwrap_err().kind(), "reserved_command");
    let items = read_all(pool.execute_stream("gen", json!([1, 2]))).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].as_ref().unwrap_err().kind(), "invalid_arguments");
    let items = read_all(pool.execute_program_stream("missing", json!({}))).await;
    assert_eq!(items[0].as_ref().unwrap_err().kind(), "program_not_found");
    assert!(workers[0].try_next_request().is_none());
}
