/*
 * asyncore/chat_flow.h -- flow control for async_chat: limits on the
 * length of one input record (an error, or a cut reported at the record's
 * terminator), and read pausing while the channel's own output queue is
 * long.
 *
 * asynchat never stops reading.  A peer that sends a line without end, or
 * sends requests faster than it reads the responses, makes a channel (or
 * the program behind collect_incoming_data) buffer without bound.  These
 * settings bound both; all are off on a new channel.
 *
 * WHAT THE INPUT LIMIT COUNTS
 *   Under a BYTES terminator, the RECORD is the data between two
 *   terminators: the bytes received since the last found_terminator (or
 *   since the terminator was last set) -- those handed to
 *   collect_incoming_data and those a record cut dropped -- plus those that
 *   the next delivery would add.  The terminator itself does not count, nor
 *   do bytes held back because they may begin it.  When a record
 *   would grow past the limit, none of the excess is delivered:
 *   handle_error(d, EMSGSIZE, "input") runs once (its default logs and
 *   closes), found_terminator does not run for that record, and if the
 *   channel stays open the rest of the record is dropped up to and
 *   including its terminator; framing resumes after it.  The program
 *   should drop the part it collected already.
 *   Under a COUNT or NONE terminator every byte is delivered as it comes
 *   and nothing accumulates in the channel: the limit does not apply (a
 *   COUNT is the program's own choice of record size).
 *   Whatever the limit, the channel itself holds at most one read
 *   (ac_in_buffer_size) plus fewer bytes than the terminator's length.
 *
 * CUTTING A RECORD (asyncore_chat_set_max_record)
 *   Line protocols answer an over-long line at its end and go on: SMTP's
 *   "500 line too long".  With a record size set, the first @max bytes of
 *   a record are delivered as usual, the rest is dropped as it arrives (up
 *   to the terminator, which is consumed as usual), and found_terminator
 *   runs at the terminator with asyncore_chat_record_truncated(d) true.
 *   Framing never breaks and no hook runs for the dropped bytes; memory
 *   stays bounded as above.  A record of exactly @max bytes is not cut.
 *   Under a COUNT or NONE terminator nothing is cut.
 *
 *   Both limits may be set.  The input limit counts every byte of a
 *   record, dropped ones included, so it is the point at which the
 *   program gives up on a peer (EMSGSIZE, by default a close), while the
 *   record size is what it keeps: set_max_record(d, 1000) with
 *   set_max_input(d, 65536) answers lines of 1 kB to 64 kB as too long
 *   and drops the connection beyond.  An input limit at or below the
 *   record size takes over: the record fails before it is cut.
 *
 * READ PAUSING
 *   With a high-water mark set, the channel stops reading (readable() is
 *   false) while more than @high bytes are queued for output
 *   (asyncore_chat_queued()), and reads again once the queue is down to
 *   @low.  A peer that sends requests and does not read the responses then
 *   meets TCP's own flow control instead of filling this process's memory:
 *   the queue stays below @high plus what one read (ac_in_buffer_size
 *   bytes) makes the program push.  Producers not yet asked for their
 *   bytes are not counted.  A program that overrides readable() should
 *   call asyncore_chat_readable() for this to work.
 */
#ifndef ASYNCORE_CHAT_FLOW_H
#define ASYNCORE_CHAT_FLOW_H

#include <asyncore/chat.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Limit a record under a BYTES terminator to @max bytes (0: no limit, the
 * default); see WHAT THE INPUT LIMIT COUNTS.  A record that already went
 * past a new, lower limit fails at its next delivery.  Returns 0, or -1
 * with errno EINVAL (not a chat) or EBADF (closed).  Safe anywhere,
 * including the channel's hooks.
 */
ASYNCORE_API int asyncore_chat_set_max_input(asyncore_dispatcher *d,
                                             size_t max);

/**
 * Cut records under a BYTES terminator at @max bytes (0: never, the
 * default); see CUTTING A RECORD.  A record already longer than a new,
 * lower size is cut at its next delivery.  Returns 0, or -1 with errno
 * EINVAL (@d NULL or not a chat) or EBADF (closed).  Safe anywhere,
 * including the channel's hooks.
 */
ASYNCORE_API int asyncore_chat_set_max_record(asyncore_dispatcher *d,
                                              size_t max);

/**
 * Whether the current record was cut at the record size: true from the
 * collect_incoming_data call that gets the record's last kept bytes (if
 * any) until found_terminator for that record returned -- above all,
 * inside found_terminator, for the record that just ended, even after the
 * hook set a new terminator.  False otherwise.  Returns 1 or 0; 0 with
 * errno EINVAL if @d is NULL or not a chat.  Works on a closed channel
 * while it is valid; safe anywhere.
 */
ASYNCORE_API int asyncore_chat_record_truncated(const asyncore_dispatcher *d);

/**
 * Pause reading while more than @high bytes are queued for output, and
 * resume when at most @low are (@high 0: never pause, the default); see
 * READ PAUSING.  Takes effect at once.  Returns 0, or -1 with errno EINVAL
 * (@low > @high, or not a chat) or EBADF (closed).  Safe anywhere,
 * including the channel's hooks.
 */
ASYNCORE_API int asyncore_chat_set_read_high_water(asyncore_dispatcher *d,
                                                   size_t high, size_t low);

#ifdef __cplusplus
}
#endif

#endif /* ASYNCORE_CHAT_FLOW_H */
