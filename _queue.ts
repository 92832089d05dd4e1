// Copyright 2026 the chanpool authors. MIT license.
// An intrusive doubly-linked FIFO: O(1) push, shift and removal of any node,
// so an aborted waiter leaves nothing behind and costs nothing to take out.

/** A node that can sit in at most one {@linkcode LinkedQueue} at a time. */
export interface QueueNode<N extends QueueNode<N>> {
  /** The node before this one, or `null` at the head. */
  prev: N | null;
  /** The node after this one, or `null` at the tail. */
  next: N | null;
  /** The queue holding this node, or `null` while it is in none. */
  queue: LinkedQueue<N> | null;
}

/** FIFO of intrusive nodes; `node.queue === this` exactly while it is linked. */
export class LinkedQueue<N extends QueueNode<N>> {
  head: N | null = null;
  tail: N | null = null;
  length = 0;

  push(node: N): void {
    node.queue = this;
    node.next = null;
    node.prev = this.tail;
    if (this.tail === null) this.head = node;
    else this.tail.next = node;
    this.tail = node;
    this.length++;
  }

  shift(): N | null {
    const node = this.head;
    if (node !== null) this.remove(node);
    return node;
  }

  remove(node: N): void {
    if (node.queue !== this) return;
    const { prev, next } = node;
    if (prev === null) this.head = next;
    else prev.next = next;
    if (next === null) this.tail = prev;
    else next.prev = prev;
    node.prev = node.next = null;
    node.queue = null;
    this.length--;
  }
}
