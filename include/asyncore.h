/*
 * asyncore.h -- libasyncore: Python's asyncore/asynchat model on libevent.
 *
 * Include this one header; it includes every module's.
 */
#ifndef ASYNCORE_H
#define ASYNCORE_H

#include <asyncore/common.h>
#include <asyncore/version.h>
#include <asyncore/map.h>
#include <asyncore/dispatcher.h>
#include <asyncore/loop.h>
#include <asyncore/send.h>
#include <asyncore/file.h>
#include <asyncore/chat.h>
#include <asyncore/tls.h>
#include <asyncore/timer.h>
#include <asyncore/chat_flow.h>
#include <asyncore/thread.h>
#include <asyncore/resolve.h>

#endif /* ASYNCORE_H */
