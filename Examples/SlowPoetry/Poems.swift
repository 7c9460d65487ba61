// The package's three built-in poems, written for it, of 3003, 615 and 653
// bytes of UTF-8: the sizes of the tutorial's poems, so its timings hold
// (16, 13 and 14 chunks of 200, 50 and 50 bytes).
//
// Generated once from plain text; Tests/EndToEndTests checks the sizes.

extension Poem {
    /// "The Loop That Waits", 3003 bytes.
    public static let loopThatWaits = Poem(name: "the-loop-that-waits", text: #"""
The Loop That Waits

Before the sockets, there was only waiting:
a thread that asked the network for a word
and stood there, hands in pockets, hesitating,
until the kernel answered what it heard.

It asked the first server, and the first server slept.
It asked again, and still the wire was cold.
The clock went on; the patient caller kept
its place in line, as it had been told.

Then came the workers: four of them, then ten,
each one a copy, each one fed and housed,
each one a little world with walls, and then
the scheduler, tired, could not keep them roused.

Then came the threads, lighter, sharing rooms,
sharing the hallway and the kitchen knife,
and every shared thing grew a lock, and looms
of mutexes were woven through their life.

Then someone said: do not wait for the reply.
Ask, and move on; ask someone else; come back.
And so the program spun, and did not lie
in any bed, and ran itself off track,

asking a hundred times a second, "Now?"
and hearing "Not yet, try again," and trying,
a hamster on a wheel who knew not how
to rest, and kept one core forever flying.

At last a quieter machine was made:
a list of every door that might be knocked,
a single call that sleeps, and is not afraid,
until the kernel says which door unlocked.

You tell the selector what you hope to read.
You tell it what to do when it is ready.
You give the loop your callbacks and your need,
and the loop turns, and turns, and holds you steady.

One thread. One list. A hundred thousand doors.
The timer heap remembers who must wake.
The eventfd is tapped from other floors
when someone far away has work to make.

No lock is taken where no other hand
can touch the thing you hold. No switch, no flight
from core to core. The callbacks understand
that they must finish quickly, and be light,

for while one callback runs, the others stand
outside the door, and cannot be let in;
a slow one holds the line up, and the land
of waiting doors grows quiet, and wears thin.

So every callback asks and then returns.
It reads what waited for it, writes what fits,
and when the buffer fills, it simply learns
to ask the loop to call it back. It sits

in no one's way. The poem arrives in pieces:
two hundred bytes, a pause, two hundred more.
The loop collects them as the kernel releases
each fragment, and it does not mind the score

of seconds it was given to be idle.
It spent them on the other two, who spoke
in smaller breaths, of fifty bytes, a bridle
of short lines, and the loop heard every stroke.

Eleven seconds, not the sum of three.
The slowest voice decides how long it takes.
The others finish early and are free.
That is the only promise the loop makes:

not speed, but never standing in the hall
when there is someone else who could be heard;
not many hands, but one hand for them all,
that listens for the door, and not the word.

And when the last one closes, and the list
of doors is empty, and the heap is bare,
the loop looks round for anything it missed,
finds nothing, and returns. Ended.
"""# + "\n")

    /// "Fifty Bytes", 615 bytes.
    public static let fiftyBytes = Poem(name: "fifty-bytes", text: #"""
Fifty Bytes

I come in fifty bytes at a time,
a slow server with a small mouth,
and a pause of seven tenths between
each breath, like rain going south.

Do not stand at my door and wait.
Go ask the others what they know.
The loop will tell you when I speak;
the kernel keeps the words I owe.

I am not the slowest of the three.
The long one speaks in heavy stone,
two hundred bytes, and sixteen times;
I finish first and go home alone.

And if you hear me out of turn,
between the other voices' lines,
that is the point: the wire is shared,
and every breath of mine is time.

Then I am done: I close and so I rest.
"""# + "\n")

    /// "The Third Server", 653 bytes.
    public static let theThirdServer = Poem(name: "the-third-server", text: #"""
The Third Server

Thirteen pauses, or fourteen,
and then the socket closes clean:
a little song in fifty-byte
installments, through a quiet night.

The first client asked me, then it slept
inside its read, and there it kept
a whole thread waiting, doing none
of all the things that could be done.

The second client never slept.
It asked and asked, and never kept
its hands still, spinning like a top,
and asked again, and did not stop.

The third one handed me a key
and told the loop: wake me, not me;
wake the part that knows the rest.
And the loop woke it. That was best.

So here I end, in fifty-byte bits,
with a closed socket and no more lights.
"""# + "\n")

}
