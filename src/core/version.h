/* version.h - the release number, one place for the broker and warrenctl. */
#ifndef WR_VERSION_H
#define WR_VERSION_H

#define WARREN_VERSION "0.1.0"

#endif
