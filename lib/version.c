/*
 * version.c -- the version of the library actually loaded.
 */
#include "config.h"

#include "asyncore-internal.h"

const char *asyncore_version(void)
{
    return ASYNCORE_VERSION_STRING;
}

unsigned asyncore_version_number(void)
{
    return ASYNCORE_VERSION_NUMBER;
}
