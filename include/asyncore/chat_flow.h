/*
 * asyncore/chat_flow.h -- flow control for async_chat: a limit on the
 * length of one input record, and read pausing while the channel's own
 * output queue is long.
 *
 * asynchat never stops reading.  A peer that sends a line without end, or
 * sends requests faster than it reads the responses, makes a channel (or
 * the program behind collect_incoming_data) buffer without bound.  These
 * two settings bound both; both are off on a new channel.
 *
 * WHAT THE INPUT LIMIT COUNTS
 *   Under a BYTES terminator, the RECORD is the data between two
 *   terminators: the bytes handed to collect_incoming_data since the last
 *   found_terminator (or since the terminator was last set), plus those
 *   that the next delivery would add.  The terminator itself does not
 *   count, nor do bytes held back because they may begin it.  When a record
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
