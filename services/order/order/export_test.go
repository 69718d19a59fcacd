package order

// StoreMargin is storeMargin, for the tests of the configuration's defaults.
var StoreMargin = storeMargin
